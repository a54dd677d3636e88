import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { disarmFaults } from "../../src/domain/faults";
import { purchaseOperationDiedAt } from "../books";
import { tenantWithCatalog } from "../helpers";

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
      const { ids } = await purchaseOperationDiedAt(
        t,
        "purchase.ordered",
        resources.map((resource) => ({ resource, amount: 1, period: "1 month" })),
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
