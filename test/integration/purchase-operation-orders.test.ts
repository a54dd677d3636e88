import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { assignIds, buy, plan } from "../../src/app/subscriptions";
import { createOperation, startOperation } from "../../src/db/operations";
import { armFault, disarmFaults } from "../../src/domain/faults";
import { tenantWithCatalog, unique } from "../helpers";

afterEach(() => disarmFaults());

/**
 * README, "Orders": a purchase run as an operation writes its orders `pending` and completes them,
 * with their lines, when its commission is accepted; until then its operation decides it. A run
 * that dies after writing them leaves nothing charged (mutation testing, 2026-12-04: written
 * `completed` there, the partner's statement showed a charge for a purchase its operation might
 * still undo, and no test noticed).
 */
describe("a purchase operation's run that dies after writing its orders", () => {
  for (const resources of [["mem"], ["mem", "cpu"]]) {
    it(`of ${resources.length} subscription(s) leaves them pending, nothing charged`, async () => {
      const t = await tenantWithCatalog(1, 100);
      const customer = t.customers[0] as string;
      const now = new Date();
      const planned = (
        await plan(
          env,
          t.partnerId,
          resources.map((resource) => ({ customer, resource, amount: 1, period: "1 month" })),
          now,
        )
      ).subscriptions;
      const ids = assignIds(planned);
      const opRef = unique("op");
      await createOperation(env, {
        opRef,
        partnerId: t.partnerId,
        customerId: customer,
        kind: "purchase",
        payload: { kind: "purchase", partnerId: t.partnerId, ids },
        now,
      });
      await startOperation(env, opRef, now);
      armFault("purchase.ordered");
      await expect(buy(env, t.partnerId, planned, ids, now, { operationRef: opRef })).rejects.toThrow(
        "purchase.ordered",
      );
      const order = Object.values(ids.orders)[0] as string;
      const written = await env.DB.prepare("SELECT state FROM orders WHERE id = ?")
        .bind(order)
        .first<{ state: string }>();
      expect(written?.state).toBe("pending");
      const lines = await env.DB.prepare("SELECT count(*) AS n FROM charges WHERE order_id = ?")
        .bind(order)
        .first<{ n: number }>();
      expect(lines?.n).toBe(0);
    });
  }
});
