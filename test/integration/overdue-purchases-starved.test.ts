import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { abandonOverduePurchases, VENDOR_DEADLINE_MS } from "../../src/app/operations";
import { createOperation } from "../../src/db/operations";
import { expectBooksBalance } from "../books";
import {
  call,
  eventually,
  expectOk,
  syndicatedProduct,
  tenantWithCatalog,
  usageOf,
  vendorEndpoints,
} from "../helpers";

vendorEndpoints();

/**
 * The cron's vendor-deadline step reads the overdue purchases a page at a time. Overdue purchases
 * that keep failing (their undo throws on every run) must not fill every run's page, so that a
 * younger overdue purchase is never undone: its order and its quota would stay pending for good.
 */
describe("overdue purchases that keep failing, ahead of another", () => {
  it("do not keep the cron from undoing the others", async () => {
    const t = await tenantWithCatalog(1, 100);
    const { product } = await syndicatedProduct(t);
    const customer = t.customers[0] as string;
    const r = await call("POST", "/v1/subscriptions/", {
      token: t.partnerKey,
      body: { objects: [{ customer, resource: product, amount: 3, period: "1 week" }] },
    });
    const location = r.headers.get("location") as string;
    const opRef = location.split("/").at(-1) as string;
    await eventually(async () => {
      const op = await env.DB.prepare("SELECT waiting FROM operations WHERE op_ref = ?")
        .bind(opRef)
        .first<{ waiting: number }>();
      return op?.waiting ? true : undefined;
    }, "waiting");
    const accepted = new Date(Date.now() - VENDOR_DEADLINE_MS + 120_000);
    await env.DB.prepare("UPDATE operations SET created_at = ? WHERE op_ref = ?")
      .bind(accepted.toISOString(), opRef)
      .run();
    // 150 purchases overdue for longer, waiting on their vendor, whose undo throws every time
    // (here: a payload it cannot read).
    const older = new Date(accepted.getTime() - 86_400_000);
    for (let i = 0; i < 150; i++) {
      const poisoned = `op_0${String(i).padStart(31, "0")}`;
      await createOperation(env, {
        opRef: poisoned,
        partnerId: t.partnerId,
        customerId: customer,
        kind: "purchase",
        payload: { kind: "purchase", partnerId: t.partnerId, at: older.toISOString(), objects: [] },
        now: older,
      });
      await env.DB.prepare("UPDATE operations SET status = 'running', waiting = 1 WHERE op_ref = ?")
        .bind(poisoned)
        .run();
    }
    // The cron, three minutes on (past this purchase's deadline), twice.
    for (const minutes of [3, 8]) {
      await abandonOverduePurchases(env, new Date(Date.now() + minutes * 60_000));
    }
    const final = await call("GET", location, { token: t.partnerKey });
    expect(final.status, final.text).toBe(424);
    expect(await usageOf(t, 0, product)).toMatchObject({ usage: 0, pending: 0 });
    const orders = await expectOk(call("GET", "/v1/orders/", { token: t.partnerKey }));
    expect(orders.objects.map((o: { state: string }) => o.state)).toEqual(["failed"]);
    await expectBooksBalance(t);
  });
});
