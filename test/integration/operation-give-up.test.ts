import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import type { OperationPayload } from "../../src/app/intents";
import { MAX_ATTEMPTS, requeueStalledOperations } from "../../src/app/operations";
import type { PurchaseIds } from "../../src/app/subscriptions";
import { createOperation } from "../../src/db/operations";
import { armFault, disarmFaults } from "../../src/domain/faults";
import { uuidv7 } from "../../src/domain/ids";
import { recoveryBoundMs } from "../../src/domain/recovery";
import worker from "../../src/index";
import type { OperationMessage } from "../../src/objects/operations-queue";
import { expectBooksBalance } from "../books";
import { call, expectOk, tenantWithCatalog, usageOf } from "../helpers";

afterEach(() => disarmFaults());

/**
 * An operation out of attempts whose work took effect on its last attempt (README, "Asynchronous
 * operations"): a purchase or an extension whose commission was accepted, a report drained. Its
 * status never says "undone, send it again", which would have the client buy or drain twice.
 */
describe("an operation out of attempts whose purchase took effect on its last attempt", () => {
  const bought = async () => {
    const t = await tenantWithCatalog(1, 100);
    const customer = t.customers[0] as string;
    const ids: PurchaseIds = { orders: { [customer]: uuidv7() }, subscriptions: [uuidv7()] };
    const payload: OperationPayload = {
      kind: "purchase",
      partnerId: t.partnerId,
      customerId: customer,
      at: new Date().toISOString(),
      objects: [{ customer, resource: "cpu", amount: 2, period: "1 week" }],
      ids,
    };
    return { t, customer, ids, payload, id: ids.subscriptions[0] as string };
  };

  it("answers 201 (the purchase is live and charged), not a 409 'given up ... undone'", async () => {
    const { t, customer, ids, payload, id } = await bought();
    const opRef = await lastAttemptDiesAfterWork(t, payload);
    const sub = await expectOk(call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey }));
    const order = await expectOk(call("GET", `/v1/orders/${ids.orders[customer]}`, { token: t.partnerKey }));
    const usage = await usageOf(t, 0, "cpu");
    const final = await call("GET", `/v1/operations/${opRef}`, { token: t.partnerKey });
    // The purchase took effect: live, charged, holding its quota...
    expect(sub).toMatchObject({ status: "active", end_reason: null });
    expect(order.state).toBe("completed");
    expect(usage).toMatchObject({ usage: 2, pending: 0 });
    // ...so its operation says so, not "given up, undone: send the request again".
    expect(final.status, final.text).toBe(201);
    expect(final.body.objects.map((o: { id: string }) => o.id)).toEqual([id]);
    await expectBooksBalance(t);
  });

  it("is left running when its answer cannot be stored either, and the stalled-operation sweep finishes it", async () => {
    const { t, payload, id } = await bought();
    const opRef = await lastAttemptDiesAfterWork(t, payload, 2);
    expect((await call("GET", `/v1/operations/${opRef}`, { token: t.partnerKey })).status).toBe(202);
    // Its row counts the attempts its messages made (here, the test's one message made its last).
    await env.DB.prepare("UPDATE operations SET attempts = ? WHERE op_ref = ?")
      .bind(MAX_ATTEMPTS, opRef)
      .run();
    await requeueStalledOperations(env, new Date(Date.now() + recoveryBoundMs(env) + 1_000));
    const final = await call("GET", `/v1/operations/${opRef}`, { token: t.partnerKey });
    expect(final.status, final.text).toBe(201);
    expect(final.body.objects.map((o: { id: string }) => o.id)).toEqual([id]);
    await expectBooksBalance(t);
  });
});

/**
 * Creates operation `payload` (no message) and delivers it once, as its last attempt, dying after
 * the work (`faults` times: the first kills the attempt, a second the give-up's run for its answer).
 */
async function lastAttemptDiesAfterWork(t: { partnerId: string }, payload: OperationPayload, faults = 1) {
  const opRef = `op_${crypto.randomUUID().replaceAll("-", "")}`;
  await createOperation(env, {
    opRef,
    partnerId: t.partnerId,
    customerId: payload.customerId ?? null,
    kind: payload.kind,
    payload: payload as unknown as Record<string, unknown>,
    now: new Date(),
  });
  armFault("operation.performed", faults);
  const batch = createMessageBatch<OperationMessage>("stratus-operations", [
    { id: `msg-${opRef}`, timestamp: new Date(), attempts: MAX_ATTEMPTS, body: { opRef } },
  ]);
  await worker.queue(batch, env);
  await getQueueResult(batch, createExecutionContext());
  return opRef;
}

describe("other kinds out of attempts that took effect on their last attempt", () => {
  it("an extension that took effect answers 200, not 409 'given up'", async () => {
    const t = await tenantWithCatalog(1, 100);
    const customer = t.customers[0] as string;
    const sub = (
      await expectOk(
        call("POST", "/v1/subscriptions/", {
          token: t.partnerKey,
          body: { objects: [{ customer, resource: "dssd", amount: 1, period: "1 week" }] },
        }),
        201,
      )
    ).objects[0];
    const ext = { subscription: uuidv7(), order: uuidv7() };
    const opRef = await lastAttemptDiesAfterWork(t, {
      kind: "extend",
      partnerId: t.partnerId,
      customerId: customer,
      at: new Date().toISOString(),
      subscription: sub.id,
      period: "1 week",
      ids: ext,
    });
    const root = await expectOk(call("GET", `/v1/subscriptions/${sub.id}/`, { token: t.partnerKey }));
    const order = await call("GET", `/v1/orders/${ext.order}`, { token: t.partnerKey });
    const final = await call("GET", `/v1/operations/${opRef}`, { token: t.partnerKey });
    expect(root.descendants).toEqual([ext.subscription]);
    expect(order.body?.state).toBe("completed");
    expect(final.status, final.text).toBe(200);
    expect(final.body.id).toBe(ext.subscription);
    await expectBooksBalance(t);
  });

  it("a consumption report that took effect answers 200, not 409 'given up ... send the request again'", async () => {
    const t = await tenantWithCatalog(1, 100);
    const customer = t.customers[0] as string;
    const tx = (
      await expectOk(
        call("POST", "/v1/subscriptions/", {
          token: t.partnerKey,
          body: { objects: [{ customer, resource: "tx", amount: 50 }] },
        }),
        201,
      )
    ).objects[0];
    const opRef = await lastAttemptDiesAfterWork(t, {
      kind: "consume",
      partnerId: t.partnerId,
      customerId: customer,
      at: new Date().toISOString(),
      customer,
      product: "tx",
      amount: 30,
      report: uuidv7(),
    });
    const after = await expectOk(call("GET", `/v1/subscriptions/${tx.id}/`, { token: t.partnerKey }));
    const final = await call("GET", `/v1/operations/${opRef}`, { token: t.partnerKey });
    expect(after.remaining).toBe(20);
    expect(final.status, final.text).toBe(200);
    expect(final.body.meta).toEqual({ unallocated: 0 });
    await expectBooksBalance(t);
  });
});
