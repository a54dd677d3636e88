import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { findCredential } from "../../src/db/credentials";
import { parseToken } from "../../src/domain/credentials";
import { tierOf } from "../../src/http/rate-limit";
import { basic, boughtWithOperations, call, customerKeyed, expectOk } from "../helpers";

/**
 * A customer-scoped key (role `account`) sees one customer through one scope: its single reads of
 * another customer answer 404, and its lists and their `meta.total_count` leave others out.
 */

const meta = async (path: string, auth: { token: string } | { headers: Record<string, string> }) => {
  const r = await call("GET", path, auth);
  expect(r.status, `${path} ${r.text}`).toBe(200);
  return { count: r.body.objects.length as number, total: r.body.meta.total_count as number };
};

describe("what a customer-scoped key sees", () => {
  it("counts in meta.total_count only its customer's orders and operations, and ?customer= narrows every count", async () => {
    const t = await customerKeyed();
    const [a, b] = t.customers as [string, string];
    await boughtWithOperations(t, a, 2);
    await boughtWithOperations(t, b, 3);
    const partner = { token: t.partnerKey };
    const account = { headers: basic("me", t.customerKey) };
    for (const list of ["/v1/orders", "/v1/operations"]) {
      expect(await meta(list, partner), list).toEqual({ count: 5, total: 5 });
      expect(await meta(`${list}?customer=${a}`, partner), list).toEqual({ count: 2, total: 2 });
      expect(await meta(`${list}?customer=${b}&limit=1`, partner), list).toEqual({ count: 1, total: 3 });
      expect(await meta(`${list}?customer=${crypto.randomUUID()}`, partner), list).toEqual({
        count: 0,
        total: 0,
      });

      expect(await meta(list, account), list).toEqual({ count: 2, total: 2 });
      expect(await meta(`${list}?limit=0`, account), list).toEqual({ count: 2, total: 2 });
      expect(await meta(`${list}?limit=1&offset=1`, account), list).toEqual({ count: 1, total: 2 });
      expect(await meta(`${list}?customer=${a}`, account), list).toEqual({ count: 2, total: 2 });
      // Naming its partner's other customer widens nothing: an empty page, counted as such.
      expect(await meta(`${list}?customer=${b}`, account), list).toEqual({ count: 0, total: 0 });
    }
  });

  it("counts its own statement's lines, and another customer's statement does not exist for it", async () => {
    const t = await customerKeyed();
    const [a, b] = t.customers as [string, string];
    await boughtWithOperations(t, a, 2);
    await boughtWithOperations(t, b, 3);
    const month = new Date().toISOString().slice(0, 7);
    const own = await call("GET", `/v1/customers/${a}/statements/${month}?limit=1`, {
      headers: basic("me", t.customerKey),
    });
    expect(own.status, own.text).toBe(200);
    expect(own.body.meta.total_count).toBe(2);
    expect(own.body.line_count).toBe(2);
    expect(new Set(own.body.objects.map((l: { customer: string }) => l.customer))).toEqual(new Set([a]));
    const theirs = await call("GET", `/v1/customers/${b}/statements/${month}`, {
      headers: basic("me", t.customerKey),
    });
    expect(theirs.status).toBe(404);
    expect(theirs.headers.get("content-type")).toMatch(/^application\/problem\+json/);
  });

  it("answers 404, not 403, for another customer's order, subscription, usage and operation, changing nothing", async () => {
    const t = await customerKeyed();
    const [theirs] = await boughtWithOperations(t, t.customers[1] as string, 1);
    if (!theirs) throw new Error("nothing bought");
    const auth = { headers: basic("me", t.customerKey) };
    const before = await call("GET", `/v1/subscriptions/${theirs.id}/`, { token: t.partnerKey });
    const reads: Array<[string, string, unknown?]> = [
      ["GET", `/v1/orders/${theirs.order}`],
      ["GET", `/v1/subscriptions/${theirs.id}/`],
      ["GET", `/v1/subscriptions/${theirs.id}/usage`],
      ["GET", `/v1/operations/${theirs.op}`],
      ["PATCH", `/v1/subscriptions/${theirs.id}/`, { auto_renew: true }],
      ["PUT", `/v1/subscriptions/${theirs.id}/`, { ...before.body, auto_renew: !before.body.auto_renew }],
      ["POST", `/v1/subscriptions/${theirs.id}/action/?do=extend`, {}],
      ["DELETE", `/v1/subscriptions/${theirs.id}/`],
    ];
    for (const [method, path, body] of reads) {
      const r = await call(method, path, { ...auth, ...(body === undefined ? {} : { body }) });
      expect(r.status, `${method} ${path} ${r.text}`).toBe(404);
      expect(r.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    }
    const after = await call("GET", `/v1/subscriptions/${theirs.id}/`, { token: t.partnerKey });
    expect(after.headers.get("etag")).toBe(before.headers.get("etag"));
    expect(after.body).toEqual(before.body);
  });
});

describe("the account role", () => {
  it("is not the quota API's user token: a user token buys and reads nothing on /v1", async () => {
    const t = await customerKeyed();
    const user = t.userTokens[0] as string;
    expect(parseToken(user)?.role).toBe("customer");
    const before = await env.DB.prepare("SELECT count(*) AS n FROM subscriptions WHERE partner_id = ?")
      .bind(t.partnerId)
      .first<{ n: number }>();
    const quote = { objects: [{ amount: 10, period: "1 month", resource: "dssd" }] };
    const attempts: Array<[string, string, unknown?]> = [
      ["POST", "/v1/subscriptions/", quote],
      ["POST", "/v1/subscriptioncalculator/", quote],
      ["GET", "/v1/subscriptions/"],
      ["GET", "/v1/orders"],
      ["GET", "/v1/charges"],
    ];
    for (const [method, path, body] of attempts) {
      for (const auth of [{ token: user }, { headers: basic("me", user) }]) {
        const r = await call(method, path, { ...auth, ...(body === undefined ? {} : { body }) });
        expect(r.status, `${method} ${path}`).toBe(403);
      }
    }
    const after = await env.DB.prepare("SELECT count(*) AS n FROM subscriptions WHERE partner_id = ?")
      .bind(t.partnerId)
      .first<{ n: number }>();
    expect(after?.n).toBe(before?.n);
    // The user token still reads its quotas, which the account key cannot.
    expect((await call("GET", "/account/v1.0/quotas", { token: user })).status).toBe(200);
  });

  it("is refused by the quota API, the vendor API, webhooks, the catalog and operator routes", async () => {
    const t = await customerKeyed();
    const key = t.customerKey;
    const quota = await call("GET", "/account/v1.0/quotas", { token: key });
    expect(quota.status).toBe(401);
    const refused: Array<[string, string]> = [
      ["GET", `/api/order/${crypto.randomUUID()}`],
      ["GET", `/api/subscription/${crypto.randomUUID()}`],
      ["GET", "/v1/webhooks/deliveries"],
      ["GET", `/v1/vendors/${crypto.randomUUID()}`],
      ["GET", "/v1/products"],
      ["GET", "/v1/resources"],
      ["GET", `/v1/partners/${t.partnerId}`],
      ["GET", `/v1/customers/${t.customers[0]}/quotas`],
    ];
    for (const [method, path] of refused) {
      const r = await call(method, path, { token: key });
      expect(r.status, `${method} ${path} ${r.text}`).toBe(403);
    }
    // pycloudsigma's get_schema() is not a partner's route: the account reads it.
    expect((await call("GET", "/v1/subscriptions/schema/", { headers: basic("me", key) })).status).toBe(200);
  });

  it("keeps its Idempotency-Keys apart from its partner's", async () => {
    const t = await customerKeyed();
    const idem = { "idempotency-key": `shared-${crypto.randomUUID()}` };
    const buy = (auth: { token: string } | { headers: Record<string, string> }, amount: number) =>
      call("POST", "/v1/subscriptions/", {
        ...auth,
        headers: { ...("headers" in auth ? auth.headers : {}), ...idem },
        body: { objects: [{ customer: t.customers[1], amount, period: "1 month", resource: "cpu" }] },
      });
    const byPartner = await buy({ token: t.partnerKey }, 1);
    expect(byPartner.status, byPartner.text).toBe(201);
    const account = { headers: basic("me", t.customerKey) };
    const mine = await call("POST", "/v1/subscriptions/", {
      headers: { ...account.headers, ...idem },
      body: { objects: [{ amount: 2, period: "1 month", resource: "cpu" }] },
    });
    expect(mine.status, mine.text).toBe(201);
    expect(mine.body.objects[0].customer).toBe(t.customers[0]);
    expect(mine.body.objects[0].id).not.toBe(byPartner.body.objects[0].id);
    const again = await call("POST", "/v1/subscriptions/", {
      headers: { ...account.headers, ...idem },
      body: { objects: [{ amount: 2, period: "1 month", resource: "cpu" }] },
    });
    expect(again.status).toBe(201);
    expect(again.body.objects[0].id).toBe(mine.body.objects[0].id);
    const partnerAgain = await buy({ token: t.partnerKey }, 1);
    expect(partnerAgain.body.objects[0].id).toBe(byPartner.body.objects[0].id);
  });

  it("counts under its partner's rate-limit tier", async () => {
    const t = await customerKeyed();
    const id = parseToken(t.customerKey)?.id as string;
    for (const tier of ["raised", "unlimited", "standard"]) {
      await expectOk(
        call("PATCH", `/v1/partners/${t.partnerId}`, { token: t.operator, body: { rate_limit: tier } }),
      );
      const credential = await findCredential(env, id);
      expect(credential?.role).toBe("account");
      expect(credential && tierOf(credential)).toBe(tier);
    }
  });
});
