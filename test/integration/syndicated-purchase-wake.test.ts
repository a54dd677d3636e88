import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { armFault, disarmFaults } from "../../src/domain/faults";
import { expectBooksBalance, recoverAll } from "../books";
import {
  call,
  eventually,
  expectOk,
  syndicatedProduct,
  tenantWithCatalog,
  usageOf,
  vendorEndpoints,
  vendorTokenOf,
} from "../helpers";

/**
 * The push of a syndicated subscription's change wakes its purchase's operation only while that
 * purchase waits on its vendor: the push of the report that settles it (DEPLOYED or FAILED) does,
 * so a report whose own run died still completes the purchase (README, the vendor API's PATCH);
 * a change long after it settled (a vendor's later report, a partner's change) does not. Before,
 * every MODIFIED of the subscription queued its purchase's operation, long finished, again: a
 * queue message and a D1 write each, for nothing.
 */

vendorEndpoints();
afterEach(() => disarmFaults());

/** A syndicated purchase waiting on its vendor, and what is sent to the operations queue from now on. */
async function waitingPurchase() {
  const t = await tenantWithCatalog(1, 100);
  const { product, vendorId } = await syndicatedProduct(t);
  const customer = t.customers[0] as string;
  const bought = await call("POST", "/v1/subscriptions/", {
    token: t.partnerKey,
    body: { objects: [{ customer, resource: product, amount: 3, period: "1 week" }] },
  });
  expect(bought.status, bought.text).toBe(202);
  const location = bought.headers.get("location") as string;
  const opRef = location.split("/").at(-1) as string;
  const id = await eventually(async () => {
    const list = await expectOk(call("GET", "/v1/subscriptions/?status=all", { token: t.partnerKey }));
    return list.objects[0]?.id as string | undefined;
  }, "the subscription");
  await eventually(async () => {
    const op = await env.DB.prepare("SELECT waiting FROM operations WHERE op_ref = ?")
      .bind(opRef)
      .first<{ waiting: number }>();
    return op?.waiting ? true : undefined;
  }, "waiting");
  const vendorToken = await vendorTokenOf(t, vendorId);
  const report = (body: Record<string, unknown>) =>
    call("PATCH", `/api/subscription/${id}`, { token: vendorToken, body });
  const sent = vi.spyOn(env.OPERATIONS, "send");
  /** How many times the operation was queued since the spy was set (or last asked). */
  const wakes = () => {
    const n = sent.mock.calls.filter(([m]) => (m as { opRef?: string }).opRef === opRef).length;
    sent.mockClear();
    return n;
  };
  return { t, product, location, id, report, wakes, restore: () => sent.mockRestore() };
}

describe("the push of a syndicated subscription's change", () => {
  it("wakes the purchase its vendor's report settles, and no more once it has settled", async () => {
    const { t, product, location, id, report, wakes, restore } = await waitingPurchase();
    try {
      expect((await report({ deploymentStatus: "DEPLOYED" })).status).toBe(200);
      // The report's push wakes the operation (the report's own run may die).
      expect(wakes()).toBe(1);
      expect((await call("GET", location, { token: t.partnerKey })).status).toBe(201);

      // Long after: the vendor's later reports and the partner's changes.
      expect((await report({ endUserInstructions: "Sign in with your e-mail" })).status).toBe(200);
      expect((await report({ syndicatedEndpoints: ["https://crm.example/t1"] })).status).toBe(200);
      expect((await report({ deploymentStatus: "STOPPED" })).status).toBe(200);
      expect((await report({ deploymentStatus: "DEPLOYED" })).status).toBe(200);
      await expectOk(
        call("PATCH", `/v1/subscriptions/${id}/`, { token: t.partnerKey, body: { auto_renew: true } }),
      );
      const events = await env.DB.prepare(
        "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE subscription_id = ? AND type = 'MODIFIED'",
      )
        .bind(id)
        .first<{ n: number }>();
      // Every one of them told the vendor (a MODIFIED each, besides the DEPLOYED's)...
      expect(events?.n).toBe(6);
      // ...and none of them queued the finished operation again.
      expect(wakes()).toBe(0);
    } finally {
      restore();
    }
    expect(await usageOf(t, 0, product)).toMatchObject({ usage: 3, pending: 0 });
    await expectBooksBalance(t);
  });

  for (const status of ["DEPLOYED", "FAILED"] as const) {
    it(`still wakes it for a ${status} whose request died after its commit, which then settles it`, async () => {
      const { t, product, location, report, wakes, restore } = await waitingPurchase();
      try {
        armFault("subscription.committed");
        expect((await report({ deploymentStatus: status })).status).toBe(500);
        disarmFaults();
        expect(wakes()).toBe(0);
        // The shard's alarm pushes the commit whose push died: that push wakes the operation.
        await recoverAll(t);
        expect(wakes()).toBeGreaterThanOrEqual(1);
      } finally {
        restore();
      }
      const final = await eventually(async () => {
        const reply = await call("GET", location, { token: t.partnerKey });
        return reply.status === 202 ? undefined : reply;
      }, "the operation to finish");
      expect(final.status, final.text).toBe(status === "DEPLOYED" ? 201 : 424);
      expect(await usageOf(t, 0, product)).toMatchObject({
        usage: status === "DEPLOYED" ? 3 : 0,
        pending: 0,
      });
      await expectBooksBalance(t);
    });
  }
});
