import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { abandon, assignIds, buy, plan } from "../../src/app/subscriptions";
import { expectBooksBalance, recoverAll } from "../books";
import { gate, syndicatedProduct, tenant, withCatalog } from "../helpers";

/**
 * The recovery sweep racing a purchase that waits on its vendor, whose orders are written pending
 * before its subscriptions (recovery-races.test.ts has the purchases that take effect at once).
 */

describe("a purchase waiting on its vendor, undone while its request stalls before its orders", () => {
  it("leaves no order pending: the undo wrote it failed, and the late insert changes nothing", async () => {
    const t = await tenant({ customers: 1 });
    await withCatalog(t);
    const { product } = await syndicatedProduct(t);
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
    const stall = gate();
    const own = <T extends object>(target: T, key: PropertyKey) => {
      const value = Reflect.get(target, key);
      return typeof value === "function" ? value.bind(target) : value;
    };
    const DB = new Proxy(env.DB, {
      get(target, key) {
        if (key !== "batch") return own(target, key);
        return async (statements: D1PreparedStatement[]) => {
          await stall.pass();
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
    await stall.reached;
    expect(await abandon(env, ids, new Date())).toBe("undone");
    stall.release();
    expect(await original).toMatch("died at its create");
    await recoverAll(t);
    const order = await env.DB.prepare("SELECT state FROM orders WHERE id = ?")
      .bind(Object.values(ids.orders)[0])
      .first<{ state: string }>();
    expect(order?.state).toBe("failed");
    await expectBooksBalance(t);
  });
});
