import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { v7 } from "uuid";
import { describe, expect, it } from "vitest";
import { createOperation } from "../../src/db/operations";
import worker from "../../src/index";
import type { OperationMessage } from "../../src/objects/operations-queue";
import { subscriptionObject } from "../../src/objects/subscription-object";
import { expectBooksBalance } from "../books";
import { call, expectOk, shardsHeld, type Tenant, tenantWithCatalog, usageOf } from "../helpers";

/**
 * "One that a later accepted start or stop (resize) overtook changes nothing: the last one
 * accepted decides" (README, "Asynchronous operations"). A PATCH of a cloud's amount under
 * If-Match that finds the amount already in effect (a queued resize to the same amount applied
 * between its If-Match check and its change) answers 200 "done", but records no reference: a
 * resize accepted before the PATCH then applies over it.
 */

async function buyCloud(t: Tenant): Promise<string> {
  const r = await expectOk(
    call("POST", "/v1/subscriptions/", {
      token: t.partnerKey,
      body: { objects: [{ customer: t.customers[0], resource: "cumulus", amount: 1 }] },
    }),
    201,
  );
  return r.objects[0].id;
}

/** A resize of cloud `id` to `amount`, accepted `ago` ms ago and queued since (not delivered). */
async function queuedResize(t: Tenant, id: string, amount: number, ago: number): Promise<string> {
  const accepted = new Date(Date.now() - ago);
  const opRef = `op_${crypto.randomUUID().replaceAll("-", "")}`;
  await createOperation(env, {
    opRef,
    partnerId: t.partnerId,
    customerId: null,
    kind: "update",
    payload: {
      kind: "update",
      partnerId: t.partnerId,
      at: accepted.toISOString(),
      subscription: id,
      amount,
      ref: v7({ msecs: accepted.getTime() }),
    },
    now: accepted,
  });
  return opRef;
}

async function deliver(opRef: string) {
  const batch = createMessageBatch<OperationMessage>("stratus-operations", [
    { id: `msg-${opRef}`, timestamp: new Date(), attempts: 1, body: { opRef } },
  ]);
  await worker.queue(batch, env);
  return getQueueResult(batch, createExecutionContext());
}

describe("a resize under If-Match found already in effect", () => {
  it("is still the last one accepted: a resize accepted before it does not apply after it", async () => {
    const t = await tenantWithCatalog(1, 100);
    const id = await buyCloud(t);
    await expectOk(call("POST", `/v1/subscriptions/${id}/action/?do=start`, { token: t.partnerKey }));

    // Two resizes accepted a while ago, still queued: to 3, then to 2.
    const toThree = await queuedResize(t, id, 3, 2_000);
    const toTwo = await queuedResize(t, id, 2, 1_000);

    // Now the partner sets 3 under If-Match (the tag of amount 1); its change is held on its way
    // to the shard, past the If-Match check.
    const read = await call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey });
    const etag = read.headers.get("etag") as string;
    const held = shardsHeld("changeAmount");
    const patch = call("PATCH", `/v1/subscriptions/${id}/`, {
      token: t.partnerKey,
      body: { amount: 3 },
      headers: { "if-match": etag },
      env: held.env,
    });
    await held.reached;
    // Meanwhile the older resize to 3 runs.
    await deliver(toThree);
    expect((await subscriptionObject(env, id).get())?.amount).toBe(3);
    held.release();
    const answered = await patch;
    expect(answered.status, answered.text).toBe(200);
    expect(answered.body.amount).toBe(3);

    // The resize to 2 was accepted before the PATCH: it is overtaken and changes nothing.
    await deliver(toTwo);
    const op = await call("GET", `/v1/operations/${toTwo}`, { token: t.partnerKey });
    const after = await subscriptionObject(env, id).get();
    expect(
      after?.amount,
      `the last accepted (PATCH amount 3) decides; the older resize answered ${op.status}`,
    ).toBe(3);
    expect(after?.runs.at(-1)?.quantity).toBe(3);
    expect(await usageOf(t, 0, "cumulus")).toMatchObject({ usage: 3, pending: 0 });
    await expectBooksBalance(t);
  });
});
