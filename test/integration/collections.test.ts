import { describe, expect, it } from "vitest";
import { call, expectOk, tenantWithCatalog } from "../helpers";

/** CloudSigma's collection conventions, as its own Python library (pycloudsigma) sends them. */

const setup = () => tenantWithCatalog(1, 100_000);

const ids = (page: { objects: { id: string }[] }) => page.objects.map((o) => o.id);

describe("pages", async () => {
  const t = await setup();
  // More than the default page (50).
  const bought = await expectOk(
    call("POST", "/v1/subscriptions/", {
      token: t.partnerKey,
      body: {
        objects: Array.from({ length: 60 }, () => ({
          customer: t.customers[0],
          resource: "dssd",
          amount: 1,
          period: "1 day",
        })),
      },
    }),
    201,
  );
  const all = (bought.objects as { id: string }[]).map((o) => o.id).sort();
  const list = (query: string) =>
    expectOk(call("GET", `/v1/subscriptions/?${query}`, { token: t.partnerKey }));

  it("answers every row for limit=0, saying so with meta.limit 0", async () => {
    expect(ids(await list(""))).toHaveLength(50);
    const page = await list("limit=0");
    expect(ids(page)).toEqual(all);
    expect(page.meta).toEqual({ limit: 0, next_cursor: null });
  });

  it("skips rows by offset, says so, and hands a cursor on", async () => {
    const first = await list("limit=10&offset=20");
    expect(ids(first)).toEqual(all.slice(20, 30));
    expect(first.meta).toMatchObject({ limit: 10, offset: 20, next_cursor: expect.any(String) });
    const next = await list(`limit=10&cursor=${first.meta.next_cursor}`);
    expect(ids(next)).toEqual(all.slice(30, 40));
    expect(next.meta).not.toHaveProperty("offset");
    const last = await list("limit=0&offset=55");
    expect(ids(last)).toEqual(all.slice(55));
    expect(last.meta).toEqual({ limit: 0, offset: 55, next_cursor: null });
    expect(ids(await list("offset=60"))).toEqual([]);
  });

  it("pages every /v1 collection by offset", async () => {
    for (const path of [
      "/v1/orders",
      "/v1/customers",
      "/v1/operations",
      "/v1/charges",
      "/v1/groupedsubscriptions/",
    ]) {
      const r = await expectOk(call("GET", `${path}?limit=0&offset=0`, { token: t.partnerKey }));
      expect(r.meta, path).toMatchObject({ limit: 0, offset: 0, next_cursor: null });
    }
    const charges = await expectOk(call("GET", "/v1/charges?limit=0", { token: t.partnerKey }));
    expect(charges.objects).toHaveLength(60);
    const skipped = await expectOk(call("GET", "/v1/charges?offset=58", { token: t.partnerKey }));
    expect(skipped.objects).toEqual(charges.objects.slice(58));
  });

  it("refuses a parameter a list does not take, on every /v1 list", async () => {
    const statement = `/v1/customers/${t.customers[0]}/statements/${new Date().toISOString().slice(0, 7)}`;
    for (const path of [
      "/v1/orders",
      "/v1/customers",
      "/v1/operations",
      "/v1/charges",
      statement,
      // The whole catalogs take none at all.
      "/v1/products",
      "/v1/resources",
    ]) {
      // Ignored, a misspelt filter would answer the whole list as if it matched.
      const r = await call("GET", `${path}?subscripton=${all[0]}`, { token: t.partnerKey });
      expect(r.status, path).toBe(400);
      expect(r.body.errors, path).toEqual([
        { point: "/subscripton", message: "not a parameter of this list" },
      ]);
    }
    const deliveries = await call("GET", "/v1/webhooks/deliveries?state=dead", { token: t.operator });
    expect(deliveries.status).toBe(400);
  });

  it("answers the whole lists with meta too, so a client paging on meta.next_cursor stops", async () => {
    // DESIGN.md: collections answer {"objects": [...], "meta": {...}} with the cursor in meta.
    for (const path of ["/v1/products", "/v1/resources", `/v1/customers/${t.customers[0]}/quotas`]) {
      const r = await expectOk(call("GET", path, { token: t.partnerKey }));
      expect(r.meta, path).toEqual({ next_cursor: null, total_count: r.objects.length });
    }
  });

  it("counts the whole list where one indexed count tells", async () => {
    const orders = await expectOk(call("GET", "/v1/orders?limit=1&offset=0", { token: t.partnerKey }));
    expect(orders.meta).toEqual({ limit: 1, offset: 0, next_cursor: null, total_count: 1 });
    const customers = await expectOk(call("GET", "/v1/customers?limit=1", { token: t.partnerKey }));
    expect(customers.meta).toMatchObject({ total_count: 1 });
    const operations = await expectOk(call("GET", "/v1/operations?status=failed", { token: t.partnerKey }));
    expect(operations.meta).toMatchObject({ total_count: 0 });
    expect((await list("limit=1")).meta).not.toHaveProperty("total_count");
  });

  it("answers list_detail()'s detail/ as the list, and refuses a filter the list does not take", async () => {
    expect(await list("limit=0")).toEqual(
      await expectOk(call("GET", "/v1/subscriptions/detail/?limit=0", { token: t.partnerKey })),
    );
    const grouped = await expectOk(call("GET", "/v1/groupedsubscriptions/?limit=5", { token: t.partnerKey }));
    expect(
      await expectOk(call("GET", "/v1/groupedsubscriptions/detail/?limit=5", { token: t.partnerKey })),
    ).toEqual(grouped);
    // Ignored, these would answer every subscription as if it matched.
    for (const query of [`uuid=${all[0]}`, "resource__in=cpu", "auto_renew=true", "fields=id"]) {
      const r = await call("GET", `/v1/subscriptions/?${query}`, { token: t.partnerKey });
      expect(r.status, query).toBe(400);
      expect(r.body.errors).toEqual([{ point: `/${query.split("=")[0]}`, message: expect.any(String) }]);
      const g = await call("GET", `/v1/groupedsubscriptions/detail/?${query}`, { token: t.partnerKey });
      expect(g.status, query).toBe(400);
    }
  });

  it("refuses a negative offset, an offset past the bound, and offset with cursor", async () => {
    for (const query of ["offset=-1", "offset=10001", "offset=2&cursor=YQ"]) {
      const r = await call("GET", `/v1/subscriptions/?${query}`, { token: t.partnerKey });
      expect(r.status, query).toBe(400);
      expect(r.headers.get("content-type")).toBe("application/problem+json");
      expect(r.body.errors.map((e: { point: string }) => e.point)).toEqual(["/offset"]);
    }
  });
});

describe("limit=0 past one page", async () => {
  const t = await setup();
  // pycloudsigma's list() asks for every row and never reads meta: 1,100 must all come back.
  const bought: string[] = [];
  for (const count of [500, 500, 100]) {
    const r = await expectOk(
      call("POST", "/v1/subscriptions/", {
        token: t.partnerKey,
        body: {
          objects: Array.from({ length: count }, () => ({
            customer: t.customers[0],
            resource: "dssd",
            amount: 1,
            period: "1 day",
          })),
        },
      }),
      201,
    );
    bought.push(...(r.objects as { id: string }[]).map((o) => o.id));
  }
  bought.sort();

  it("answers every subscription, in order, once, on both lists and their detail/", async () => {
    for (const path of [
      "/v1/subscriptions/",
      "/v1/subscriptions/detail/",
      "/v1/groupedsubscriptions/",
      "/v1/groupedsubscriptions/detail/",
    ]) {
      const r = await call("GET", `${path}?limit=0`, { token: t.partnerKey });
      expect(r.status, path).toBe(200);
      expect(r.headers.get("content-type"), path).toBe("application/json");
      expect(ids(r.body), path).toEqual(bought);
      expect(r.body.meta, path).toEqual({ limit: 0, next_cursor: null });
    }
    const skipped = await expectOk(
      call("GET", "/v1/subscriptions/?limit=0&offset=501", { token: t.partnerKey }),
    );
    expect(ids(skipped)).toEqual(bought.slice(501));
    expect(skipped.meta).toEqual({ limit: 0, offset: 501, next_cursor: null });
    const after = await expectOk(
      call("GET", `/v1/subscriptions/?limit=1&cursor=${(await list1()).meta.next_cursor}`, {
        token: t.partnerKey,
      }),
    );
    const rest = await expectOk(
      call("GET", `/v1/subscriptions/?limit=0&cursor=${(await list1()).meta.next_cursor}`, {
        token: t.partnerKey,
      }),
    );
    expect(ids(after)).toEqual([bought[1]]);
    expect(ids(rest)).toEqual(bought.slice(1));
  });

  const list1 = () => expectOk(call("GET", "/v1/subscriptions/?limit=1", { token: t.partnerKey }));

  it("answers every charge line, and a whole statement with its totals first", async () => {
    const charges = await expectOk(call("GET", "/v1/charges?limit=0", { token: t.partnerKey }));
    expect(charges.objects).toHaveLength(1100);
    expect(new Set(charges.objects.map((c: { id: string }) => c.id)).size).toBe(1100);
    const month = new Date().toISOString().slice(0, 7);
    const path = `/v1/customers/${t.customers[0]}/statements/${month}`;
    const whole = await expectOk(call("GET", `${path}?limit=0`, { token: t.partnerKey }));
    const page = await expectOk(call("GET", `${path}?limit=500`, { token: t.partnerKey }));
    expect(whole.objects).toHaveLength(whole.line_count);
    expect(whole.line_count).toBeGreaterThanOrEqual(1100);
    expect(whole.objects.slice(0, 500)).toEqual(page.objects);
    const { objects: _a, meta, ...head } = whole;
    const { objects: _b, meta: pageMeta, ...pageHead } = page;
    expect(head).toEqual(pageHead);
    expect(meta).toEqual({ limit: 0, next_cursor: null, total_count: pageMeta.total_count });
  });

  it("answers HEAD with the whole body's length", async () => {
    const get = await call("GET", "/v1/subscriptions/?limit=0", { token: t.partnerKey });
    const head = await call("HEAD", "/v1/subscriptions/?limit=0", { token: t.partnerKey });
    expect(head.status).toBe(200);
    expect(head.headers.get("content-length")).toBe(String(new TextEncoder().encode(get.text).byteLength));
  });
});

describe("PUT /v1/subscriptions/{id}/ with the object as read", async () => {
  const t = await setup();
  const buy = async (resource: string) =>
    (
      await expectOk(
        call("POST", "/v1/subscriptions/", {
          token: t.partnerKey,
          body: { objects: [{ customer: t.customers[0], resource, amount: 1, period: "1 month" }] },
        }),
        201,
      )
    ).objects[0];
  const read = async (id: string) => call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey });
  const put = (id: string, body: unknown, headers: Record<string, string> = {}) =>
    call("PUT", `/v1/subscriptions/${id}/`, { token: t.partnerKey, body, headers });

  it("applies auto_renew flipped, ignoring the read-only fields that match (times as instants)", async () => {
    const sub = await buy("dssd");
    const before = (await read(sub.id)).body;
    const sent = {
      ...before,
      auto_renew: !before.auto_renew,
      // The same instant, written differently.
      start_time: before.start_time.replace(/\.000Z$/, "Z").replace("Z", "+00:00"),
    };
    expect(sent.start_time).not.toBe(before.start_time);
    const r = await put(sub.id, sent);
    expect(r.status, r.text).toBe(200);
    expect(r.body).toEqual({ ...before, auto_renew: !before.auto_renew });
    expect((await read(sub.id)).body.auto_renew).toBe(!before.auto_renew);
    // Sent again unchanged: nothing to change, the same answer.
    const again = await put(sub.id, r.body);
    expect(again.status).toBe(200);
    expect(again.body).toEqual(r.body);
  });

  it("refuses a changed resource, or any read-only field, naming it and writing nothing", async () => {
    const sub = await buy("dssd");
    const before = await read(sub.id);
    const cases: [Record<string, unknown>, string[]][] = [
      [{ ...before.body, resource: "cpu", auto_renew: !before.body.auto_renew }, ["/resource"]],
      [{ ...before.body, end_time: "2031-01-01T12:00:00Z", price: "0.01" }, ["/end_time", "/price"]],
      [{ customer: t.customers[0], status: "expired" }, ["/status"]],
    ];
    for (const [body, points] of cases) {
      const r = await put(sub.id, body);
      expect(r.status, r.text).toBe(400);
      expect(r.headers.get("content-type")).toBe("application/problem+json");
      expect(r.body.errors.map((e: { point: string }) => e.point).sort()).toEqual(points);
    }
    const after = await read(sub.id);
    expect(after.body).toEqual(before.body);
    expect(after.headers.get("etag")).toBe(before.headers.get("etag"));
    const unknown = await put(sub.id, { ...before.body, colour: "blue" });
    expect(unknown.status).toBe(400);
  });

  it("applies If-Match and Idempotency-Key as PATCH does", async () => {
    const sub = await buy("dssd");
    const before = await read(sub.id);
    const flipped = { ...before.body, auto_renew: !before.body.auto_renew };
    const stale = await put(sub.id, flipped, { "if-match": '"stale"' });
    expect(stale.status).toBe(412);
    const key = { "idempotency-key": `put-${sub.id}` };
    const first = await put(sub.id, flipped, { ...key, "if-match": before.headers.get("etag")! });
    expect(first.status, first.text).toBe(200);
    const replay = await put(sub.id, flipped, { ...key, "if-match": before.headers.get("etag")! });
    expect(replay.status).toBe(200);
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect(replay.body).toEqual(first.body);
  });

  it("refuses an amount changed on a prepaid subscription with 409, as PATCH does", async () => {
    const sub = await buy("dssd");
    const before = (await read(sub.id)).body;
    const r = await put(sub.id, { ...before, amount: 2 });
    expect(r.status).toBe(409);
    expect((await read(sub.id)).body).toEqual(before);
  });
});

describe("GET …/schema/", async () => {
  const t = await setup();

  it("describes a subscription as CloudSigma's dialect does, from the document's schemas", async () => {
    const r = await call("GET", "/v1/subscriptions/schema/", { token: t.partnerKey });
    expect(r.status, r.text).toBe(200);
    expect(r.body).toMatchObject({
      allowed_list_http_methods: ["get", "post"],
      allowed_detail_http_methods: ["get", "put", "patch", "delete"],
      default_format: "application/json",
      default_limit: 50,
      max_limit: 500,
      filtering: { status: ["exact"], resource: ["exact"] },
    });
    expect(r.body.filtering).not.toHaveProperty("limit");
    const { fields } = r.body;
    expect(fields.auto_renew).toEqual({
      type: "boolean",
      nullable: false,
      readonly: false,
      help_text: expect.stringMatching(/\S/),
      // A purchase without it gets false (README: "auto_renew defaults to false").
      default: false,
    });
    // What a purchase takes is writable (a schema-driven client would leave it out of a create).
    expect(fields.start_time).toMatchObject({ type: "datetime", nullable: false, readonly: false });
    expect(fields.end_time).toMatchObject({ type: "datetime", nullable: true, readonly: false });
    expect(fields.amount).toMatchObject({ type: "integer", readonly: false });
    expect(fields.resource).toMatchObject({ type: "string", readonly: false });
    expect(fields.price).toMatchObject({ readonly: true, default: "No default provided." });
    expect(fields.descendants).toMatchObject({ type: "list" });
    // Every field a read answers, each with help.
    const read = await expectOk(call("GET", "/v1/subscriptions/?limit=1", { token: t.partnerKey }));
    const doc = await expectOk(call("GET", "/openapi.json"));
    const documented = Object.keys(doc.components.schemas.Subscription.properties);
    expect(Object.keys(fields).sort()).toEqual(documented.sort());
    for (const [name, field] of Object.entries(fields)) {
      expect((field as { help_text: string }).help_text, name).toMatch(/\S/);
    }
    expect(read.objects).toEqual([]);
  });

  it("describes a quote: what a purchase object takes is writable", async () => {
    const r = await expectOk(call("GET", "/v1/subscriptioncalculator/schema/", { token: t.partnerKey }));
    expect(r).toMatchObject({
      allowed_list_http_methods: ["post"],
      allowed_detail_http_methods: [],
      default_limit: null,
      max_limit: null,
      filtering: {},
    });
    expect(r.fields.price).toMatchObject({ type: "string", readonly: true });
    expect(r.fields.period).toMatchObject({ type: "string", nullable: true, readonly: false });
    expect(r.fields.customer).toMatchObject({ readonly: false });
  });

  it("describes the grouped list: everything read-only, its filters and methods", async () => {
    const r = await expectOk(call("GET", "/v1/groupedsubscriptions/schema/", { token: t.partnerKey }));
    expect(r).toMatchObject({
      allowed_list_http_methods: ["get"],
      allowed_detail_http_methods: [],
      filtering: { status: ["exact"], resource: ["exact"] },
    });
    expect(Object.values(r.fields).every((f: any) => f.readonly)).toBe(true);
  });

  it("asks for a key", async () => {
    expect((await call("GET", "/v1/subscriptions/schema/")).status).toBe(401);
  });
});
