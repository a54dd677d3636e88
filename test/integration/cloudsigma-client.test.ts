import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { basic, boughtWithOperations, call, customerKeyed, expectOk, type Tenant, tenant } from "../helpers";

/**
 * Requests shaped as CloudSigma's own client library (pycloudsigma) sends them: HTTP Basic with
 * the account's username and password, where the password is a stratus API key.
 */

const credentialCount = async () =>
  (await env.DB.prepare("SELECT count(*) AS n FROM credentials").first<{ n: number }>())?.n;

describe("HTTP Basic on /v1", () => {
  it("takes the API key as the password, whatever the username", async () => {
    const t = await tenant({ customers: 1 });
    const keyId = t.partnerKey.split(".")[1] as string;
    for (const user of [keyId, "someone@example.com", ""]) {
      const r = await call("GET", "/v1/customers", { headers: basic(user, t.partnerKey) });
      expect(r.status, r.text).toBe(200);
      expect(r.body.objects.map((c: { id: string }) => c.id)).toEqual(t.customers);
    }
  });

  it("answers 401 problem+json naming every scheme to a wrong or malformed Basic header, writing nothing", async () => {
    const t = await tenant({ customers: 1 });
    const before = await credentialCount();
    const headers = [
      basic("user", `${t.partnerKey}x`),
      basic("user", "not-a-key"),
      { authorization: "Basic %%%not base64%%%" },
      { authorization: `Basic ${btoa(t.partnerKey)}` },
      { authorization: "Basic " },
    ];
    for (const h of headers) {
      const r = await call("POST", `/v1/customers/${t.customers[0]}/tokens`, { headers: h, body: {} });
      expect(r.status, h.authorization).toBe(401);
      expect(r.headers.get("content-type")).toMatch(/^application\/problem\+json/);
      expect(r.body.status).toBe(401);
      expect(r.headers.get("www-authenticate")).toBe(
        'ApiKey header="X-Api-Key", Bearer, Basic realm="stratus"',
      );
    }
    expect(await credentialCount()).toBe(before);
  });

  it("is declared in the OpenAPI document", async () => {
    const doc = (await call("GET", "/openapi.json")).body;
    expect(doc.components.securitySchemes.basic).toMatchObject({ type: "http", scheme: "basic" });
    expect(doc.paths["/v1/subscriptions"].get.security).toContainEqual({ basic: [] });
  });
});

const ASYNC = { prefer: "respond-async" };

const rowCount = async (table: string, partnerId: string) =>
  (
    await env.DB.prepare(`SELECT count(*) AS n FROM ${table} WHERE partner_id = ?`)
      .bind(partnerId)
      .first<{ n: number }>()
  )?.n;

describe("customer-scoped keys", () => {
  it("are issued by the customer's partner or the operator, for that partner's customers only", async () => {
    const t = await customerKeyed();
    const other = await tenant({ customers: 1 });
    const byOperator = await call("POST", `/v1/customers/${t.customers[1]}/api-keys`, {
      token: t.operator,
      body: {},
    });
    expect(byOperator.status, byOperator.text).toBe(201);
    expect(byOperator.headers.get("location")).toBe(`/v1/customers/${t.customers[1]}`);
    const foreign = await call("POST", `/v1/customers/${other.customers[0]}/api-keys`, {
      token: t.partnerKey,
      body: {},
    });
    expect(foreign.status).toBe(404);
    const byCustomer = await call("POST", `/v1/customers/${t.customers[0]}/api-keys`, {
      headers: basic("me", t.customerKey),
      body: {},
    });
    expect(byCustomer.status).toBe(403);
  });

  it("buys for its own customer without naming it, and answers 404 naming another, writing nothing", async () => {
    const t = await customerKeyed();
    const auth = basic("me", t.customerKey);
    const bought = await call("POST", "/v1/subscriptions/", {
      headers: auth,
      body: { objects: [{ amount: 10, period: "1 month", resource: "dssd", auto_renew: false }] },
    });
    expect(bought.status, bought.text).toBe(201);
    expect(bought.body.objects[0].customer).toBe(t.customers[0]);
    const named = await call("POST", "/v1/subscriptions/", {
      headers: auth,
      body: { objects: [{ customer: t.customers[0], amount: 1, period: "1 month", resource: "cpu" }] },
    });
    expect(named.status, named.text).toBe(201);

    const before = await rowCount("subscriptions", t.partnerId);
    const other = await call("POST", "/v1/subscriptions/", {
      headers: auth,
      body: { objects: [{ customer: t.customers[1], amount: 1, period: "1 month", resource: "cpu" }] },
    });
    expect(other.status).toBe(404);
    expect(other.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(await rowCount("subscriptions", t.partnerId)).toBe(before);
  });

  it("keeps requiring customer on a partner key's purchase (400, nothing written)", async () => {
    const t = await customerKeyed();
    const before = await rowCount("subscriptions", t.partnerId);
    const r = await call("POST", "/v1/subscriptions/", {
      token: t.partnerKey,
      body: {
        objects: [
          { customer: t.customers[0], amount: 1, period: "1 month", resource: "cpu" },
          { amount: 10, period: "1 month", resource: "dssd" },
        ],
      },
    });
    expect(r.status).toBe(400);
    expect(r.body.errors).toEqual([
      { point: "/objects/1/customer", message: "is required with a partner's key" },
    ]);
    expect(await rowCount("subscriptions", t.partnerId)).toBe(before);
  });

  it("sees only its customer's subscriptions, orders, operations and charges; another's answer 404", async () => {
    const t = await customerKeyed();
    const auth = basic("me", t.customerKey);
    const buy = async (customer: string) =>
      (
        await expectOk(
          call("POST", "/v1/subscriptions/", {
            token: t.partnerKey,
            body: { objects: [{ customer, amount: 2, period: "1 month", resource: "cpu" }] },
          }),
          201,
        )
      ).objects[0];
    const mine = await buy(t.customers[0] as string);
    const theirs = await buy(t.customers[1] as string);
    const myOp = await call("POST", `/v1/subscriptions/${mine.id}/action/?do=auto_renew`, {
      token: t.partnerKey,
      headers: ASYNC,
      body: {},
    });
    const theirOp = await call("POST", `/v1/subscriptions/${theirs.id}/action/?do=auto_renew`, {
      token: t.partnerKey,
      headers: ASYNC,
      body: {},
    });
    expect([myOp.status, theirOp.status]).toEqual([202, 202]);

    const ids = (r: { body: { objects: Array<Record<string, string>> } }, key = "id") =>
      r.body.objects.map((o) => o[key]);
    for (const path of ["/v1/subscriptions/", "/v1/groupedsubscriptions/"]) {
      const list = await call("GET", path, { headers: auth });
      expect(list.status, list.text).toBe(200);
      expect(ids(list)).toEqual([mine.id]);
    }
    expect((await call("GET", `/v1/subscriptions/${mine.id}/`, { headers: auth })).status).toBe(200);
    expect((await call("GET", `/v1/subscriptions/${theirs.id}/`, { headers: auth })).status).toBe(404);
    const patched = await call("PATCH", `/v1/subscriptions/${theirs.id}/`, {
      headers: auth,
      body: { auto_renew: true },
    });
    expect(patched.status).toBe(404);

    const orders = await call("GET", "/v1/orders", { headers: auth });
    expect(orders.body.objects.map((o: { buyer: string }) => o.buyer)).toEqual([t.customers[0]]);
    expect((await call("GET", `/v1/orders/${mine.order}`, { headers: auth })).status).toBe(200);
    const theirOrder = (await call("GET", "/v1/orders", { token: t.partnerKey })).body.objects.find(
      (o: { buyer: string }) => o.buyer === t.customers[1],
    );
    expect((await call("GET", `/v1/orders/${theirOrder.id}`, { headers: auth })).status).toBe(404);

    const operations = await call("GET", "/v1/operations", { headers: auth });
    expect(ids(operations, "opRef")).toEqual([myOp.body.opRef]);
    expect((await call("GET", `/v1/operations/${theirOp.body.opRef}`, { headers: auth })).status).toBe(404);
    expect([202, 200]).toContain(
      (await call("GET", `/v1/operations/${myOp.body.opRef}`, { headers: auth })).status,
    );

    const charges = await call("GET", "/v1/charges", { headers: auth });
    expect(charges.status, charges.text).toBe(200);
    expect(charges.body.objects.length).toBeGreaterThan(0);
    expect(new Set(charges.body.objects.map((c: { customer: string }) => c.customer))).toEqual(
      new Set([t.customers[0]]),
    );
    const asked = await call("GET", `/v1/charges?customer=${t.customers[1]}`, { headers: auth });
    expect(asked.body.objects).toEqual([]);
    const month = new Date().toISOString().slice(0, 7);
    expect(
      (await call("GET", `/v1/customers/${t.customers[0]}/statements/${month}`, { headers: auth })).status,
    ).toBe(200);
    expect(
      (await call("GET", `/v1/customers/${t.customers[1]}/statements/${month}`, { headers: auth })).status,
    ).toBe(404);
  });

  it("cannot reach partner or operator routes (403)", async () => {
    const t = await customerKeyed();
    const auth = basic("me", t.customerKey);
    const refused: Array<[string, string, unknown?]> = [
      ["GET", "/v1/customers"],
      ["POST", "/v1/customers", { name: "another" }],
      ["GET", `/v1/customers/${t.customers[0]}`],
      ["POST", `/v1/customers/${t.customers[0]}/tokens`, {}],
      ["POST", "/v1/partners", { name: "mine" }],
      ["POST", `/v1/partners/${t.partnerId}/api-keys`, {}],
      ["GET", "/v1/webhooks/deliveries"],
    ];
    for (const [method, path, body] of refused) {
      const r = await call(method, path, { headers: auth, ...(body === undefined ? {} : { body }) });
      expect(r.status, `${method} ${path}`).toBe(403);
      expect(r.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    }
  });

  it("extends its subscription with POST …/action/?do=extend and {} as pycloudsigma sends it", async () => {
    const t = await customerKeyed();
    const auth = basic("me", t.customerKey);
    const bought = await expectOk(
      call("POST", "/v1/subscriptions/", {
        headers: auth,
        body: { objects: [{ amount: 10, period: "1 month", resource: "dssd" }] },
      }),
      201,
    );
    const first = bought.objects[0];
    const extended = await call("POST", `/v1/subscriptions/${first.id}/action/?do=extend`, {
      headers: auth,
      body: {},
    });
    expect(extended.status, extended.text).toBe(200);
    expect(extended.body.customer).toBe(t.customers[0]);
    expect(extended.body.start_time).toBe(first.end_time);
  });
});

describe("pycloudsigma's Subscriptions() calls under a customer-scoped key", () => {
  /** The account's own subscription, and one of its partner's other customer. */
  async function twoBought() {
    const t = await customerKeyed();
    const auth = basic(t.customers[0] as string, t.customerKey);
    const mine = (
      await expectOk(
        call("POST", "/v1/subscriptions/", {
          headers: auth,
          body: { objects: [{ amount: 10, period: "1 month", resource: "dssd" }] },
        }),
        201,
      )
    ).objects[0];
    await expectOk(
      call("POST", "/v1/subscriptions/", {
        token: t.partnerKey,
        body: { objects: [{ customer: t.customers[1], amount: 1, period: "1 month", resource: "cpu" }] },
      }),
      201,
    );
    return { t, auth, mine };
  }

  it("list(): GET /v1/subscriptions/?limit=0 answers every subscription of its customer, and only those", async () => {
    const { t, auth, mine } = await twoBought();
    const r = await call("GET", "/v1/subscriptions/?limit=0", { headers: auth });
    expect(r.status, r.text).toBe(200);
    expect(r.body.objects.map((o: { id: string }) => o.id)).toEqual([mine.id]);
    expect(r.body.meta).toEqual({ limit: 0, next_cursor: null });
    const whole = await call("GET", "/v1/subscriptions/?limit=0", { token: t.partnerKey });
    expect(whole.body.objects).toHaveLength(2);
  });

  it("list({'subscribed_object': ip}): no subscription is bound to an object, so the filter matches none", async () => {
    const { auth } = await twoBought();
    const r = await call("GET", "/v1/subscriptions/?subscribed_object=a0c6a6a1-77e5-4d8e-b1a5-d4c55cd1e0a7", {
      headers: auth,
    });
    expect(r.status, r.text).toBe(200);
    expect(r.body).toEqual({ objects: [], meta: { limit: 50, next_cursor: null } });
  });

  it("create() and get_price() take amount as CloudSigma sends it, a string of digits; others answer 400", async () => {
    const { auth } = await twoBought();
    const object = { amount: "3", period: "1 month", resource: "cpu" };
    const quote = await expectOk(
      call("POST", "/v1/subscriptioncalculator/", { headers: auth, body: { objects: [object] } }),
    );
    expect(quote.objects[0].amount).toBe(3);
    const bought = await expectOk(
      call("POST", "/v1/subscriptions/", { headers: auth, body: { objects: [object] } }),
      201,
    );
    expect(bought.objects[0]).toMatchObject({ amount: 3, price: quote.objects[0].price });
    for (const amount of ["3.5", "-1", "", "1e3", " 3"]) {
      const r = await call("POST", "/v1/subscriptions/", {
        headers: auth,
        body: { objects: [{ ...object, amount }] },
      });
      expect(r.status, `${amount}: ${r.text}`).toBe(400);
      expect(r.body.errors[0].point).toBe("/objects/0/amount");
    }
  });

  it("update(uuid, data): PUT of the subscription as read with auto_renew flipped changes it", async () => {
    const { auth, mine } = await twoBought();
    const read = await expectOk(call("GET", `/v1/subscriptions/${mine.id}/`, { headers: auth }));
    const put = await call("PUT", `/v1/subscriptions/${mine.id}/`, {
      headers: auth,
      body: { ...read, auto_renew: !read.auto_renew },
    });
    expect(put.status, put.text).toBe(200);
    expect(put.body.auto_renew).toBe(!read.auto_renew);
    const after = await expectOk(call("GET", `/v1/subscriptions/${mine.id}/`, { headers: auth }));
    expect(after).toEqual({ ...read, auto_renew: !read.auto_renew });
  });

  it("a PUT that changes resource answers 400 problem+json naming it, and writes nothing", async () => {
    const { auth, mine } = await twoBought();
    const before = await call("GET", `/v1/subscriptions/${mine.id}/`, { headers: auth });
    const put = await call("PUT", `/v1/subscriptions/${mine.id}/`, {
      headers: auth,
      body: { ...before.body, resource: "cpu", auto_renew: !before.body.auto_renew },
    });
    expect(put.status).toBe(400);
    expect(put.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(put.body.errors).toEqual([{ point: "/resource", message: expect.stringContaining("read-only") }]);
    const after = await call("GET", `/v1/subscriptions/${mine.id}/`, { headers: auth });
    expect(after.headers.get("etag")).toBe(before.headers.get("etag"));
    expect(after.body).toEqual(before.body);
  });

  it("get_schema(): GET /v1/subscriptions/schema/ describes the resource, customer filter included", async () => {
    const { auth } = await twoBought();
    const r = await call("GET", "/v1/subscriptions/schema/", { headers: auth });
    expect(r.status, r.text).toBe(200);
    expect(r.body.filtering).toHaveProperty("customer");
    expect(r.body.fields.auto_renew).toMatchObject({ type: "boolean", readonly: false });
  });

  it("get_schema() states auto_renew's default, false, as a purchase without it gets (README)", async () => {
    const { auth } = await twoBought();
    for (const path of ["/v1/subscriptions/schema/", "/v1/subscriptioncalculator/schema/"]) {
      const r = await call("GET", path, { headers: auth });
      expect(r.status, r.text).toBe(200);
      expect(r.body.fields.auto_renew.default, path).toBe(false);
      // Fields without a default still say so.
      expect(r.body.fields.amount.default, path).toBe("No default provided.");
    }
    const bought = await call("POST", "/v1/subscriptions/", {
      headers: auth,
      body: { objects: [{ resource: "cpu", amount: 1, period: "1 week" }] },
    });
    expect(bought.status, bought.text).toBe(201);
    expect(bought.body.objects[0].auto_renew).toBe(false);
  });
});

describe("the calculator without customer", () => {
  const quote = { objects: [{ amount: 10, period: "1 month", resource: "dssd" }] };

  it("prices pycloudsigma's get_price body under a customer-scoped key, for its customer", async () => {
    const t = await customerKeyed();
    const before = await rowCount("subscriptions", t.partnerId);
    const r = await call("POST", "/v1/subscriptioncalculator/", {
      headers: basic("me", t.customerKey),
      body: quote,
    });
    expect(r.status, r.text).toBe(200);
    expect(r.body.objects[0].price).toMatch(/^\d+\.\d{2}$/);
    expect(Number(r.body.objects[0].price)).toBeGreaterThan(0);
    expect(r.body.objects[0]).toMatchObject({ resource: "dssd", amount: 10, customer: t.customers[0] });
    expect(r.body.meta.total_price).toBe(r.body.objects[0].price);
    const other = await call("POST", "/v1/subscriptioncalculator/", {
      headers: basic("me", t.customerKey),
      body: { objects: [{ ...quote.objects[0], customer: t.customers[1] }] },
    });
    expect(other.status).toBe(404);
    expect(await rowCount("subscriptions", t.partnerId)).toBe(before);
  });

  it("prices it under a partner key with no customer, as a named customer would pay", async () => {
    const t = await customerKeyed();
    const bare = await call("POST", "/v1/subscriptioncalculator/", { token: t.partnerKey, body: quote });
    expect(bare.status, bare.text).toBe(200);
    expect(bare.body.objects[0].customer).toBeNull();
    const named = await call("POST", "/v1/subscriptioncalculator/", {
      token: t.partnerKey,
      body: { objects: [{ ...quote.objects[0], customer: t.customers[1] }] },
    });
    expect(named.status, named.text).toBe(200);
    expect(bare.body.objects[0].price).toBe(named.body.objects[0].price);
    const bad = await call("POST", "/v1/subscriptioncalculator/", {
      token: t.partnerKey,
      body: { objects: [{ ...quote.objects[0], resource: "nothing" }] },
    });
    expect(bad.status).toBe(400);
    expect(bad.body.errors).toEqual([{ point: "/objects/0/resource", message: expect.any(String) }]);
  });
});

describe("?customer= on the lists", () => {
  const LISTS = ["/v1/subscriptions/", "/v1/groupedsubscriptions/", "/v1/orders", "/v1/operations"];
  const customerOf: Record<string, (o: Record<string, string>) => string | undefined> = {
    "/v1/subscriptions/": (o) => o.customer,
    "/v1/groupedsubscriptions/": (o) => o.customer,
    "/v1/orders": (o) => o.buyer,
  };

  /** Each customer with a subscription, its order and an operation: its opRef by customer. */
  async function bought(t: Tenant) {
    const ops: Record<string, string> = {};
    for (const customer of t.customers) {
      const [one] = await boughtWithOperations(t, customer, 1, 2);
      if (one) ops[customer] = one.op;
    }
    return ops;
  }

  it("lists only that customer's rows; an unknown or foreign customer lists nothing", async () => {
    const t = await customerKeyed();
    const other = await tenant({ customers: 1 });
    const ops = await bought(t);
    const [a, b] = t.customers as [string, string];
    for (const path of LISTS) {
      const page = await call("GET", `${path}?customer=${b}`, { token: t.partnerKey });
      expect(page.status, `${path} ${page.text}`).toBe(200);
      expect(page.body.objects.length, path).toBeGreaterThan(0);
      for (const o of page.body.objects) {
        if (path === "/v1/operations") expect(o.opRef).toBe(ops[b]);
        else expect(customerOf[path]?.(o), path).toBe(b);
      }
      const whole = await call("GET", path, { token: t.partnerKey });
      expect(whole.body.objects.length, path).toBeGreaterThan(page.body.objects.length);
      for (const stranger of [crypto.randomUUID(), other.customers[0]]) {
        const none = await call("GET", `${path}?customer=${stranger}`, { token: t.partnerKey });
        expect(none.status, path).toBe(200);
        expect(none.body.objects, path).toEqual([]);
      }
      // A customer-scoped key naming its partner's other customer still sees only its own: nothing.
      const narrowed = await call("GET", `${path}?customer=${b}`, { headers: basic("me", t.customerKey) });
      expect(narrowed.status, path).toBe(200);
      expect(narrowed.body.objects, path).toEqual([]);
      const own = await call("GET", `${path}?customer=${a}`, { headers: basic("me", t.customerKey) });
      expect(own.body.objects.length, path).toBeGreaterThan(0);
    }
  });

  it("answers 400 problem+json for a customer that is not a UUID", async () => {
    const t = await tenant({ customers: 1 });
    for (const path of LISTS) {
      const r = await call("GET", `${path}?customer=customer-0`, { token: t.partnerKey });
      expect(r.status, path).toBe(400);
      expect(r.headers.get("content-type")).toMatch(/^application\/problem\+json/);
      expect(r.body.errors, path).toEqual([{ point: "/customer", message: "must be a UUID" }]);
    }
  });

  it("walks an index in list order, and the partner's list keeps its own", async () => {
    const plan = async (sql: string) =>
      (
        await env.DB.prepare(`EXPLAIN QUERY PLAN ${sql}`).bind("p", "c", "x").all<{ detail: string }>()
      ).results
        .map((r) => r.detail)
        .join("; ");
    const subscriptions = await plan(
      "select body from subscriptions where partner_id = ? and customer_id = ? and id > ? order by id limit 51",
    );
    expect(subscriptions).toMatch(/USING INDEX subscriptions_customer/);
    const orders = await plan(
      "select * from orders where partner_id = ? and customer_id = ? and id > ? order by id limit 51",
    );
    expect(orders).toMatch(/USING INDEX orders_customer/);
    const operations = await plan(
      "select * from operations where partner_id = ? and customer_id = ? and op_ref > ? order by op_ref limit 51",
    );
    expect(operations).toMatch(/USING INDEX operations_customer/);
    for (const detail of [subscriptions, orders, operations]) expect(detail).not.toMatch(/TEMP B-TREE/);
    // meta.total_count of one customer's orders and operations: counted on the same indexes.
    const countPlan = async (sql: string) =>
      (await env.DB.prepare(`EXPLAIN QUERY PLAN ${sql}`).bind("p", "c").all<{ detail: string }>()).results
        .map((r) => r.detail)
        .join("; ");
    expect(await countPlan("select count(*) from orders where partner_id = ? and customer_id = ?")).toMatch(
      /USING COVERING INDEX orders_customer/,
    );
    expect(
      await countPlan("select count(*) from operations where partner_id = ? and customer_id = ?"),
    ).toMatch(/USING COVERING INDEX operations_customer/);
    const partnerList = await plan(
      "select body from subscriptions where partner_id = ? and id > ? and previous_id is null and ? is not null order by id limit 51",
    );
    expect(partnerList).toMatch(/USING INDEX subscriptions_list/);
  });
});

describe("members CloudSigma's schema marks nullable, sent as null (a client sending every member)", () => {
  const term = {
    resource: "cpu",
    amount: 1,
    start_time: "2030-03-01T12:00:00Z",
    end_time: "2030-04-01T12:00:00Z",
  };

  it("a purchase and a quote read null start_time, end_time and period as not given", async () => {
    const t = await customerKeyed();
    const auth = basic("me@example.com", t.customerKey);
    // get_schema() tells such a client it may: both are nullable and writable.
    const schema = await expectOk(call("GET", "/v1/subscriptions/schema/", { headers: auth }));
    for (const field of ["end_time", "period"]) {
      expect(schema.fields[field], field).toMatchObject({ nullable: true, readonly: false });
    }
    const quote = await expectOk(
      call("POST", "/v1/subscriptioncalculator/", { headers: auth, body: { objects: [term] } }),
    );
    const nulled = await call("POST", "/v1/subscriptioncalculator/", {
      headers: auth,
      body: { objects: [{ ...term, period: null }] },
    });
    expect(nulled.status, nulled.text).toBe(200);
    expect(nulled.body.objects).toEqual(quote.objects);
    const bought = await call("POST", "/v1/subscriptions/", {
      headers: auth,
      body: { objects: [{ ...term, period: null }] },
    });
    expect(bought.status, bought.text).toBe(201);
    expect(bought.body.objects[0]).toMatchObject({
      start_time: "2030-03-01T12:00:00.000Z",
      end_time: "2030-04-01T12:00:00.000Z",
      period: null,
      price: quote.objects[0].price,
    });
    const byPeriod = await call("POST", "/v1/subscriptions/", {
      headers: auth,
      body: { objects: [{ resource: "cpu", amount: 1, start_time: null, end_time: null, period: "1 week" }] },
    });
    expect(byPeriod.status, byPeriod.text).toBe(201);
    expect(byPeriod.body.objects[0].period).toBe("1 week");
    // tx ignores its time parameters: null ones too.
    const tx = await call("POST", "/v1/subscriptions/", {
      headers: auth,
      body: { objects: [{ resource: "tx", amount: 5, start_time: null, end_time: null, period: null }] },
    });
    expect(tx.status, tx.text).toBe(201);
    expect(tx.body.objects[0]).toMatchObject({ resource: "tx", amount: 5, end_time: null, period: null });
    // Null is not given: none of the three is still not specific enough, and names them.
    const none = await call("POST", "/v1/subscriptions/", {
      headers: auth,
      body: { objects: [{ resource: "cpu", amount: 1, start_time: null, end_time: null, period: null }] },
    });
    expect(none.status, none.text).toBe(400);
    expect(none.body.errors.map((e: { point: string }) => e.point)).toEqual([
      "/objects/0/end_time",
      "/objects/0/period",
    ]);
  });

  it("customer: null is none: a partner's quote prices for no customer, its purchase needs one", async () => {
    const t = await customerKeyed();
    const quote = await call("POST", "/v1/subscriptioncalculator/", {
      token: t.partnerKey,
      body: { objects: [{ ...term, customer: null }] },
    });
    expect(quote.status, quote.text).toBe(200);
    expect(quote.body.objects[0].customer).toBeNull();
    const before = await rowCount("subscriptions", t.partnerId);
    const buy = await call("POST", "/v1/subscriptions/", {
      token: t.partnerKey,
      body: { objects: [{ ...term, customer: null }] },
    });
    expect(buy.status, buy.text).toBe(400);
    expect(buy.body.errors).toEqual([
      { point: "/objects/0/customer", message: "is required with a partner's key" },
    ]);
    expect(await rowCount("subscriptions", t.partnerId)).toBe(before);
    // A customer-scoped key buys for its own customer.
    const own = await call("POST", "/v1/subscriptions/", {
      headers: basic("me", t.customerKey),
      body: { objects: [{ ...term, customer: null }] },
    });
    expect(own.status, own.text).toBe(201);
    expect(own.body.objects[0].customer).toBe(t.customers[0]);
  });
});

describe("extend(uuid, data) with null period and end_time", () => {
  it("reads them as not given: the term bought again at its length; a given one still applies", async () => {
    const t = await customerKeyed();
    const auth = basic("me", t.customerKey);
    const bought = await expectOk(
      call("POST", "/v1/subscriptions/", {
        headers: auth,
        body: {
          objects: [{ resource: "cpu", amount: 1, start_time: "2030-03-01T12:00:00Z", period: "1 week" }],
        },
      }),
      201,
    );
    const first = bought.objects[0];
    const again = await call("POST", `/v1/subscriptions/${first.id}/action/?do=extend`, {
      headers: auth,
      body: { period: null, end_time: null },
    });
    expect(again.status, again.text).toBe(200);
    expect(again.body).toMatchObject({
      start_time: "2030-03-08T12:00:00.000Z",
      end_time: "2030-03-15T12:00:00.000Z",
      period: "1 week",
      price: first.price,
    });
    const longer = await call("POST", `/v1/subscriptions/${first.id}/action/?do=extend`, {
      headers: auth,
      body: { period: "2 weeks", end_time: null },
    });
    expect(longer.status, longer.text).toBe(200);
    expect(longer.body).toMatchObject({
      start_time: "2030-03-15T12:00:00.000Z",
      end_time: "2030-03-29T12:00:00.000Z",
    });
  });
});
