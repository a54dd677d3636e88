import { env } from "cloudflare:workers";
import { v7 } from "uuid";
import { describe, expect, it } from "vitest";
import { requeueStalledOperations, runOperation } from "../../src/app/operations";
import { createOperation, findOperation } from "../../src/db/operations";
import { recoveryBoundMs } from "../../src/domain/recovery";
import { EVERYTHING } from "../../src/domain/scope";
import { subscriptionObject } from "../../src/objects/subscription-object";
import { expectBooksBalance } from "../books";
import { call, expectOk, shardsHeld, type Tenant, tenantWithCatalog } from "../helpers";
import { buyFor } from "../legacy";

/**
 * A PATCH carrying both `amount` and `auto_renew` is one update: given up by the stalled-operation
 * sweep, it either took effect whole (and succeeded) or not at all (and answers 409 "did not take
 * effect"), never half.
 */
async function updateGivenUpAt(t: Tenant, id: string, autoRenew: boolean, method: string) {
  const accepted = new Date(Date.now() - 60_000);
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
      amount: 3,
      autoRenew,
      ref: v7({ msecs: accepted.getTime() }),
    },
    now: accepted,
  });
  // Seven attempts died before; this is the eighth, held at `method` (if it calls it) while the
  // sweep gives it up.
  await env.DB.prepare("UPDATE operations SET attempts = 7 WHERE op_ref = ?").bind(opRef).run();
  const held = shardsHeld(method);
  const last = runOperation(held.env, opRef);
  // Held there, or done without calling it: the sweep comes either way.
  await Promise.race([held.reached, last.catch(() => undefined)]);
  await requeueStalledOperations(env, new Date(Date.now() + recoveryBoundMs(env) + 1_000));
  held.release();
  await last.catch(() => undefined);
  const op = await findOperation(env, opRef, EVERYTHING);
  const answer = await call("GET", `/v1/operations/${opRef}`, { token: t.partnerKey });
  const r = await subscriptionObject(env, id).get();
  return { status: op?.status, answer: answer.status, amount: r?.amount, autoRenew: r?.autoRenew };
}

describe("an update of amount and auto_renew given up by the sweep while its last attempt runs", () => {
  for (const method of ["changeAmount", "setAutoRenew"]) {
    it(`held at ${method}: all of it or none of it, as its answer says`, async () => {
      const t = await tenantWithCatalog(1, 100);
      const id = await buyFor(t, "cumulus", { period: "1 week" });
      const before = (await subscriptionObject(env, id).get())?.autoRenew as boolean;
      const outcome = await updateGivenUpAt(t, id, !before, method);
      const all = { status: "succeeded", answer: 200, amount: 3, autoRenew: !before };
      const none = { status: "failed", answer: 409, amount: 1, autoRenew: before };
      expect([all, none]).toContainEqual(outcome);
      await expectBooksBalance(t);
    });
  }
});

/**
 * An auto_renew is the chain's: each term after the one it names carries it, and the last term's
 * flag is the one that renews. Given up after its last attempt set it on the term it names and
 * died before carrying it on, the operation succeeds (the term shows it): the rest of the chain
 * must carry it too, or the chain renews (and charges) on a flag turned off, or never renews.
 */
describe("an auto_renew whose last attempt died before carrying it along the chain, given up", () => {
  it("succeeds with every term of the chain carrying the flag", async () => {
    const t = await tenantWithCatalog(1, 100);
    const id = await buyFor(t, "mem", { period: "1 week" });
    const next = await expectOk(
      call("POST", `/v1/subscriptions/${id}/action/?do=extend`, { token: t.partnerKey }),
    );
    const before = (await subscriptionObject(env, id).get())?.autoRenew as boolean;
    const accepted = new Date(Date.now() - 60_000);
    const opRef = `op_${crypto.randomUUID().replaceAll("-", "")}`;
    await createOperation(env, {
      opRef,
      partnerId: t.partnerId,
      customerId: null,
      kind: "auto_renew",
      payload: {
        kind: "auto_renew",
        partnerId: t.partnerId,
        at: accepted.toISOString(),
        subscription: id,
        value: !before,
      },
      now: accepted,
    });
    await env.DB.prepare("UPDATE operations SET attempts = 7 WHERE op_ref = ?").bind(opRef).run();
    // The last attempt sets the flag on the term it names, and dies carrying it to the next.
    const dies = shardsHeld("setAutoRenew", { nth: 2, dies: true });
    await expect(runOperation(dies.env, opRef)).rejects.toThrow();
    await requeueStalledOperations(env, new Date(Date.now() + recoveryBoundMs(env) + 1_000));
    const answer = await call("GET", `/v1/operations/${opRef}`, { token: t.partnerKey });
    expect(answer.status, answer.text).toBe(200);
    const flags = [(await subscriptionObject(env, id).get())?.autoRenew];
    flags.push((await subscriptionObject(env, next.id).get())?.autoRenew);
    expect(flags).toEqual([!before, !before]);
    await expectBooksBalance(t);
  });
});
