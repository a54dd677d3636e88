import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { abandon, assignIds, buy, plan } from "../../src/app/subscriptions";
import { expectBooksBalance, recoverAll } from "../books";
import { call, expectOk, tenant, unique, withCatalog } from "../helpers";

/**
 * The recovery sweep racing a purchase that waits on its vendor, whose orders are written pending
 * before its subscriptions (recovery-races.test.ts has the purchases that take effect at once).
 */

describe("a purchase waiting on its vendor, undone while its request stalls before its orders", () => {
  it("leaves no order pending: the undo wrote it failed, and the late insert changes nothing", async () => {
    const t = await tenant({ customers: 1 });
    await withCatalog(t);
    const vendor = await expectOk(
      call("POST", "/v1/vendors", { token: t.operator, body: { name: "CRM Inc" } }),
      201,
    );
    const product = unique("crm");
    await expectOk(
      call("PUT", `/v1/resources/stratus.${product}`, { token: t.operator, body: { service: "stratus" } }),
    );
    await expectOk(
      call("PUT", `/v1/products/${product}`, {
        token: t.operator,
        body: {
          name: "CRM seats",
          kind: "license",
          unit: "seat",
          unit_price: "0.10",
          currency: "EUR",
          quota_resource: `stratus.${product}`,
          delivery: "syndicated",
          vendor: vendor.id,
          endpoint: `https://${unique("vendor")}.example/hooks`,
        },
      }),
    );
    await expectOk(
      call("PUT", `/v1/customers/${t.customers[0]}/quotas`, {
        token: t.operator,
        body: { resource: `stratus.${product}`, limit: 10 },
      }),
    );
    const now = new Date();
    const planned = (
      await plan(
        env,
        t.partnerId,
        [{ customer: t.customers[0] as string, resource: product, amount: 2, period: "1 month" }],
        now,
      )
    ).subscriptions;
    const ids = assignIds(planned);
    // The request stalls at its first D1 batch (the pending orders a vendor reads), then dies at its create.
    let arrived!: () => void;
    const reached = new Promise<void>((resolve) => {
      arrived = resolve;
    });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const own = <T extends object>(target: T, key: PropertyKey) => {
      const value = Reflect.get(target, key);
      return typeof value === "function" ? value.bind(target) : value;
    };
    const DB = new Proxy(env.DB, {
      get(target, key) {
        if (key !== "batch") return own(target, key);
        return async (statements: D1PreparedStatement[]) => {
          arrived();
          await gate;
          return target.batch(statements);
        };
      },
    });
    const SUBSCRIPTION = new Proxy(env.SUBSCRIPTION, {
      get(target, key) {
        if (key !== "get") return own(target, key);
        return (id: DurableObjectId) =>
          new Proxy(target.get(id), {
            get(stub, method) {
              if (method === "create")
                return () => Promise.reject(new Error("the request died at its create"));
              return Reflect.get(stub, method);
            },
          });
      },
    });
    const original = buy({ ...env, DB, SUBSCRIPTION } as Env, t.partnerId, planned, ids, now).then(
      () => "answered",
      (error: unknown) => String(error),
    );
    await reached;
    expect(await abandon(env, ids, new Date())).toBe("undone");
    release();
    expect(await original).toMatch("died at its create");
    await recoverAll(t);
    const order = await env.DB.prepare("SELECT state FROM orders WHERE id = ?")
      .bind(Object.values(ids.orders)[0])
      .first<{ state: string }>();
    expect(order?.state).toBe("failed");
    await expectBooksBalance(t);
  });
});
