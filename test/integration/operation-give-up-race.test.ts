import { env } from "cloudflare:workers";
import { v7 } from "uuid";
import { describe, expect, it } from "vitest";
import { requeueStalledOperations, runOperation } from "../../src/app/operations";
import { createOperation, findOperation } from "../../src/db/operations";
import { isRunning } from "../../src/domain/metering";
import { recoveryBoundMs } from "../../src/domain/recovery";
import { EVERYTHING } from "../../src/domain/scope";
import { subscriptionObject } from "../../src/objects/subscription-object";
import { expectBooksBalance } from "../books";
import { call, shardsHeld, type Tenant, tenantWithCatalog } from "../helpers";
import { buyFor } from "../legacy";

/**
 * An operation on its last attempt, still running when the stalled-operation sweep gives it up:
 * its answer must say what the subscription shows once the run ends.
 */
/** Runs work `payload` of cloud `id` as an operation on its last attempt, held at `method`, and gives it up meanwhile. */
async function givenUpWhileRunning(t: Tenant, id: string, method: string, change: Record<string, unknown>) {
  const accepted = new Date(Date.now() - 60_000);
  const opRef = `op_${crypto.randomUUID().replaceAll("-", "")}`;
  await createOperation(env, {
    opRef,
    partnerId: t.partnerId,
    customerId: null,
    kind: change.kind as string,
    payload: {
      ...change,
      partnerId: t.partnerId,
      at: accepted.toISOString(),
      subscription: id,
      ref: v7({ msecs: accepted.getTime() }),
    },
    now: accepted,
  });
  // Seven attempts died before; this is the eighth.
  await env.DB.prepare("UPDATE operations SET attempts = 7 WHERE op_ref = ?").bind(opRef).run();
  const held = shardsHeld(method);
  const last = runOperation(held.env, opRef);
  await held.reached;
  // The run makes no progress the sweep can see: past the bound, it is given up.
  await requeueStalledOperations(env, new Date(Date.now() + recoveryBoundMs(env) + 1_000));
  held.release();
  await last.catch(() => undefined);
  const op = await findOperation(env, opRef, EVERYTHING);
  const answer = await call("GET", `/v1/operations/${opRef}`, { token: t.partnerKey });
  return { status: op?.status, answer: answer.status };
}

describe("an operation on its last attempt, given up by the sweep while it still runs", () => {
  it("a start answers what the cloud shows", async () => {
    const t = await tenantWithCatalog(1, 100);
    const id = await buyFor(t, "cumulus");
    const outcome = await givenUpWhileRunning(t, id, "run", { kind: "run", action: "start" });
    const running = isRunning((await subscriptionObject(env, id).get())?.runs ?? []);
    expect({ ...outcome, running }).toEqual(
      running ? { status: "succeeded", running, answer: 200 } : { status: "failed", running, answer: 409 },
    );
    await expectBooksBalance(t);
  });

  it("a resize answers what the cloud shows, and holds what it says", async () => {
    const t = await tenantWithCatalog(1, 100);
    const id = await buyFor(t, "cumulus");
    const outcome = await givenUpWhileRunning(t, id, "changeAmount", { kind: "update", amount: 3 });
    const amount = (await subscriptionObject(env, id).get())?.amount;
    expect({ ...outcome, amount }).toEqual(
      amount === 3 ? { status: "succeeded", amount, answer: 200 } : { status: "failed", amount, answer: 409 },
    );
    await expectBooksBalance(t);
  });
});

describe("a cancel on its last attempt, given up by the sweep while it still runs", () => {
  it("answers what the subscription shows", async () => {
    const t = await tenantWithCatalog(1, 100);
    const id = await buyFor(t, "cumulus");
    const outcome = await givenUpWhileRunning(t, id, "cancel", { kind: "cancel" });
    const ended = (await subscriptionObject(env, id).get())?.endedAt !== null;
    expect({ ...outcome, ended }).toEqual(
      ended ? { status: "succeeded", ended, answer: 200 } : { status: "failed", ended, answer: 409 },
    );
    await expectBooksBalance(t);
  });
});

describe("an auto_renew on its last attempt, given up by the sweep while it still runs", () => {
  it("answers what the subscription shows", async () => {
    const t = await tenantWithCatalog(1, 100);
    const id = await buyFor(t, "cumulus", { period: "1 week" });
    const before = (await subscriptionObject(env, id).get())?.autoRenew;
    const outcome = await givenUpWhileRunning(t, id, "setAutoRenew", { kind: "auto_renew", value: !before });
    const flipped = (await subscriptionObject(env, id).get())?.autoRenew !== before;
    expect({ ...outcome, flipped }).toEqual(
      flipped ? { status: "succeeded", flipped, answer: 200 } : { status: "failed", flipped, answer: 409 },
    );
    await expectBooksBalance(t);
  });
});
