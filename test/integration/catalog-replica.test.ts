import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { call, expectOk, tenantWithCatalog, unique } from "../helpers";

/**
 * README "Catalog changes": a change to an existing product (its price) applies AT ONCE on the
 * instance that took the PUT. A GET on that instance (a list filtered by `resource`) reads the
 * catalog through its request's session, `first-unconstrained`: a replica that has not applied
 * the PUT yet hands back the old product, and the instance keeps it 30 s, pricing purchases with it.
 */

/** A replica a write behind: it still reads the products as they were when `snapshot` was taken. */
async function laggingEnv(snapshotTable: string): Promise<Env> {
  const behind = (session: D1DatabaseSession) =>
    new Proxy(session, {
      get(target, name) {
        if (name === "prepare")
          return (sql: string) => target.prepare(sql.replace(/"products"/g, `"${snapshotTable}"`));
        const value = Reflect.get(target, name);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  const db = new Proxy(env.DB, {
    get(target, name) {
      if (name === "withSession")
        return (start?: string) =>
          start === "first-unconstrained" ? behind(target.withSession(start)) : target.withSession(start);
      const value = Reflect.get(target, name);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return Object.create(env, { DB: { value: db } }) as Env;
}

describe("the catalog an instance keeps after a PUT it took", () => {
  it("prices a purchase at the new price at once, whatever a replica says", async () => {
    const t = await tenantWithCatalog(1);
    const id = unique("gpu")
      .replace(/[^a-z0-9-]/gi, "-")
      .toLowerCase();
    const put = (unit_price: string) =>
      expectOk(
        call("PUT", `/v1/products/${id}`, {
          token: t.operator,
          body: {
            name: id,
            kind: "timed",
            unit: "GHz",
            unit_price,
            currency: "EUR",
            quota_resource: "stratus.cpu",
            aliases: [],
          },
        }),
      );
    await put("0.02");
    const object = { customer: t.customers[0], resource: id, amount: 1, period: "1 week" };
    const before = await expectOk(
      call("POST", "/v1/subscriptions", { token: t.partnerKey, body: { objects: [object] } }),
      201,
    );
    // The replica: the catalog as it is now, before the price change.
    const snapshot = `products_lag_${crypto.randomUUID().replace(/-/g, "")}`;
    await env.DB.prepare(`CREATE TABLE "${snapshot}" AS SELECT * FROM products`).run();
    const lagging = await laggingEnv(snapshot);

    await put("0.20"); // this instance takes the PUT: the change applies here at once
    // A list filtered by the product, on this instance, read from the replica.
    const listed = await call("GET", `/v1/subscriptions?resource=${id}`, {
      token: t.partnerKey,
      env: lagging,
    });
    expect(listed.status, listed.text).toBe(200);

    const quote = await expectOk(
      call("POST", "/v1/subscriptioncalculator", { token: t.partnerKey, body: { objects: [object] } }),
    );
    const bought = await expectOk(
      call("POST", "/v1/subscriptions", { token: t.partnerKey, body: { objects: [object] } }),
      201,
    );
    // The same term (to the second) at ten times the unit price: ten times the price.
    const old = Number(before.objects[0].price);
    expect(Number(quote.objects[0].price)).toBeCloseTo(old * 10, 0);
    expect(Number(bought.objects[0].price)).toBeCloseTo(old * 10, 0);
  });
});
