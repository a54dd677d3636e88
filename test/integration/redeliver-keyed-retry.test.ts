import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { findDelivery } from "../../src/db/webhooks";
import { armFault, disarmFaults } from "../../src/domain/faults";
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

/**
 * A keyed `POST /v1/webhooks/deliveries/{id}/redeliver` whose first attempt redelivered and died
 * before its answer was kept (README, "Idempotency": the retry answers what the first attempt
 * would have). Before, the retry ran the redelivery afresh: while the first attempt's redelivery
 * was pending it answered 409 "still pending", and once that was delivered it redelivered the
 * event a second time (202, one more post to the vendor).
 */

let posts = 0;
vendorEndpoints(() => {
  posts++;
  return new Response(null, { status: 204 });
});
afterEach(() => disarmFaults());

/** A syndicated purchase whose CREATED was delivered: the delivery, and the vendor's token. */
async function deliveredEvent() {
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
  const delivered = await eventually(async () => {
    const list = await call("GET", "/v1/webhooks/deliveries?status=delivered", { token });
    return list.body.objects?.[0] as { id: string } | undefined;
  }, "delivered");
  const redeliver = () =>
    call("POST", `/v1/webhooks/deliveries/${delivered.id}/redeliver`, {
      token,
      headers: { "idempotency-key": `redeliver-${delivered.id}` },
    });
  return { id: delivered.id, token, redeliver };
}

describe("a keyed redelivery whose first attempt died after it redelivered", () => {
  it("answers its retry 202, not 409, while the redelivery is still pending, and queues nothing more", async () => {
    const { id, redeliver } = await deliveredEvent();
    // The queue holds the first attempt's message: the redelivery stays pending.
    const sent = vi.spyOn(env.WEBHOOKS, "send").mockImplementation(async () => undefined as never);
    try {
      armFault("request.answered");
      expect((await redeliver()).status).toBe(500);
      expect((await findDelivery(env, id, null))?.status).toBe("pending");
      const retried = await redeliver();
      expect({ status: retried.status, detail: retried.body?.detail }).toEqual({
        status: 202,
        detail: undefined,
      });
      expect(retried.body).toMatchObject({ id, status: "pending", delivered_at: null });
      expect(retried.headers.get("idempotent-replayed")).toBe("true");
      // The same answer again, kept with the key.
      expect((await redeliver()).status).toBe(202);
      const messages = sent.mock.calls.filter(([m]) => (m as { deliveryId: string }).deliveryId === id);
      expect(messages).toHaveLength(1);
    } finally {
      sent.mockRestore();
    }
  });

  it("does not deliver the event a second time once the first attempt's redelivery was delivered", async () => {
    const { id, redeliver } = await deliveredEvent();
    const before = (await findDelivery(env, id, null))?.attempts ?? 0;
    armFault("request.answered");
    expect((await redeliver()).status).toBe(500);
    // The first attempt's redelivery goes out and is delivered.
    const again = await eventually(async () => {
      const d = await findDelivery(env, id, null);
      return d?.status === "delivered" && d.attempts === before + 1 ? d : undefined;
    }, "the redelivery delivered");
    const postsBefore = posts;
    const sent = vi.spyOn(env.WEBHOOKS, "send");
    try {
      const retried = await redeliver();
      expect(retried.status, retried.text).toBe(202);
      expect(retried.headers.get("idempotent-replayed")).toBe("true");
      expect(sent.mock.calls.filter(([m]) => (m as { deliveryId: string }).deliveryId === id)).toHaveLength(
        0,
      );
    } finally {
      sent.mockRestore();
    }
    // Nothing more is posted: the delivery stays as the first attempt's redelivery left it.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const after = await findDelivery(env, id, null);
    expect({ status: after?.status, attempts: after?.attempts, posts: posts - postsBefore }).toEqual({
      status: "delivered",
      attempts: again.attempts,
      posts: 0,
    });
  });

  it("a first attempt that found the delivery pending answers its retry 409 as it did", async () => {
    const { id, token, redeliver } = await deliveredEvent();
    const sent = vi.spyOn(env.WEBHOOKS, "send").mockImplementation(async () => undefined as never);
    try {
      // Redelivered without the key: pending, held in the queue.
      expect((await call("POST", `/v1/webhooks/deliveries/${id}/redeliver`, { token })).status).toBe(202);
      const first = await redeliver();
      expect(first.status).toBe(409);
      const retried = await redeliver();
      expect(retried.status).toBe(409);
      expect(sent.mock.calls.filter(([m]) => (m as { deliveryId: string }).deliveryId === id)).toHaveLength(
        1,
      );
    } finally {
      sent.mockRestore();
    }
  });
});
