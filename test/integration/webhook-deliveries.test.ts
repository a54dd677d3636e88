import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it, vi } from "vitest";
import { attemptDelivery, resendOverdueDeliveries } from "../../src/app/webhooks";
import { findDelivery } from "../../src/db/webhooks";
import {
  call,
  eventually,
  expectOk,
  syndicatedProduct,
  tenant,
  vendorEndpoints,
  vendorTokenOf,
  withCatalog,
} from "../helpers";

/** Deliveries as the README promises them: no attempt past the horizon, listed oldest first, a redelivery not still delivered. */

let healthy = false;
let posts = 0;
vendorEndpoints(() => {
  posts++;
  return new Response(null, { status: healthy ? 204 : 503 });
});

/** A purchase of a syndicated product (202), and its vendor's token. */
async function syndicatedPurchase() {
  const t = await tenant({ customers: 1 });
  await withCatalog(t);
  const { product, vendorId } = await syndicatedProduct(t);
  const token = await vendorTokenOf(t, vendorId);
  await expectOk(
    call("POST", "/v1/subscriptions/", {
      token: t.partnerKey,
      body: { objects: [{ customer: t.customers[0], resource: product, amount: 1, period: "1 month" }] },
    }),
    202,
  );
  return { t, token };
}

/** A syndicated purchase whose CREATED was delivered: the delivery, and the vendor's token. */
async function deliveredPurchase() {
  const { token } = await syndicatedPurchase();
  const delivered = await eventually(async () => {
    const list = await call("GET", "/v1/webhooks/deliveries?status=delivered", { token });
    return list.body.objects?.[0] as { id: string } | undefined;
  }, "delivered");
  return { token, delivered };
}

describe("the retention horizon", () => {
  it("makes no attempt that would fall past it: a message that comes late finds the delivery dead", async () => {
    healthy = false;
    const { token } = await syndicatedPurchase();
    const id = await eventually(async () => {
      const list = await call("GET", "/v1/webhooks/deliveries", { token });
      return list.body.objects?.[0]?.id as string | undefined;
    }, "CREATED");
    const failed = await eventually(async () => {
      const d = await findDelivery(env, id, null);
      return d && d.attempts >= 1 ? d : undefined;
    }, "attempt 1");
    expect(failed.status).toBe("pending");
    // Its last scheduled attempt was due just before its horizon; its message came late (a lost
    // message the cron re-sent, a queue backlog): the attempt now would fall past the horizon.
    const horizon = Date.parse(failed.createdAt) + 30 * 86_400_000;
    await env.DB.prepare("UPDATE webhook_deliveries SET next_attempt_at = ? WHERE id = ?")
      .bind(new Date(horizon - 60_000).toISOString(), id)
      .run();
    healthy = true;
    const before = posts;
    const due = (await findDelivery(env, id, null))?.nextAttemptAt ?? null;
    const outcome = await attemptDelivery(env, { deliveryId: id, due }, new Date(horizon + 3_600_000));
    expect(outcome).toEqual({ outcome: "dead" });
    expect(posts - before).toBe(0);
    expect((await findDelivery(env, id, null))?.status).toBe("dead");
  });
});

describe("GET /v1/webhooks/deliveries", () => {
  beforeEach(() => {
    healthy = true;
  });

  it("lists oldest first: event ids are time-ordered", async () => {
    const { token } = await syndicatedPurchase();
    const sub = await eventually(async () => {
      const list = await call("GET", "/v1/webhooks/deliveries", { token });
      return list.body.objects?.[0]?.subscription as string | undefined;
    }, "CREATED");
    for (let i = 0; i < 6; i++) {
      await expectOk(
        call("PATCH", `/api/subscription/${sub}`, { token, body: { endUserInstructions: `step ${i}` } }),
      );
    }
    const rows = await eventually(async () => {
      const list = await call("GET", "/v1/webhooks/deliveries", { token });
      const objects = list.body.objects as Array<{
        sequence: number;
        created_at: string;
        status: string;
        id: string;
      }>;
      return objects.length === 7 && objects.every((o) => o.status === "delivered") ? objects : undefined;
    }, "seven delivered");
    const listed = rows.map((r) => r.sequence);
    // "Oldest first" (the route's description; DESIGN: delivery ids are sortable UUIDv7).
    expect(listed).toEqual([1, 2, 3, 4, 5, 6, 7]);
  });

  it("a redelivered delivery answers pending with delivered_at null (the route's example)", async () => {
    const { token, delivered } = await deliveredPurchase();
    // Hold the queue so the redelivery stays pending while we look.
    const sent = vi.spyOn(env.WEBHOOKS, "send").mockImplementation(async () => undefined as never);
    try {
      const again = await call("POST", `/v1/webhooks/deliveries/${delivered.id}/redeliver`, { token });
      expect(again.status).toBe(202);
      expect(again.body.status).toBe("pending");
      expect(again.body.delivered_at).toBeNull();
      const row = await findDelivery(env, delivered.id, null);
      expect(row?.deliveredAt).toBeNull();
    } finally {
      sent.mockRestore();
    }
  });

  it("a redelivery the queue would not take stands (202, pending) and the cron's sweep sends it", async () => {
    const { token, delivered } = await deliveredPurchase();
    const refused = vi.spyOn(env.WEBHOOKS, "send").mockRejectedValue(new Error("queue unavailable"));
    const swept = vi.spyOn(env.WEBHOOKS, "sendBatch").mockImplementation(async () => undefined as never);
    try {
      const again = await call("POST", `/v1/webhooks/deliveries/${delivered.id}/redeliver`, { token });
      expect(again.status).toBe(202);
      expect(again.body.status).toBe("pending");
      expect(refused).toHaveBeenCalledTimes(1);
      // A retry finds it pending: the first redelivery took effect.
      expect(
        (await call("POST", `/v1/webhooks/deliveries/${delivered.id}/redeliver`, { token })).status,
      ).toBe(409);
      const later = new Date(Date.now() + 11 * 60_000);
      await resendOverdueDeliveries(env, later);
      const sentIds = swept.mock.calls.flatMap(([batch]) =>
        [...batch].map((m) => (m.body as { deliveryId: string }).deliveryId),
      );
      expect(sentIds).toContain(delivered.id);
    } finally {
      refused.mockRestore();
      swept.mockRestore();
    }
  });
});
