import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { OperationPayload } from "../../src/app/intents";
import { giveUpOperation, runOperation } from "../../src/app/operations";
import { perform } from "../../src/app/perform";
import { findOperation } from "../../src/db/operations";
import { EVERYTHING } from "../../src/domain/scope";
import { subscriptionObject } from "../../src/objects/subscription-object";
import { expectBooksBalance, recoverAll } from "../books";
import { buyOne, call, expectOk, keptQueue, shardsHeld, type Tenant, tenantWithCatalog } from "../helpers";

/**
 * Bare `?do=auto_renew` toggles sent at once. Each set the opposite of the chain's flag as it read
 * it when accepted, so two at once both read it on and both set it off: one flip was lost, and the
 * second answered 200 though it toggled nothing (under If-Match too: the flag it set was already in
 * effect, taken for a retry of that very change). Found by a review of renewals racing the
 * partner's stop (2026-12-05; an earlier one saw 3 pairs of 10 lose a flip over HTTP).
 */

let day = 1;
const year = new Date().getUTCFullYear() + 60;

async function renewing(t: Tenant): Promise<string> {
  const sub = await buyOne(t, {
    resource: "cpu",
    amount: 1,
    start_time: new Date(Date.UTC(year, 0, day++, 12)).toISOString(),
    period: "1 month",
    auto_renew: true,
  });
  return sub.id as string;
}

const toggle = (t: Tenant, id: string, headers: Record<string, string> = {}, e?: Env) =>
  call("POST", `/v1/subscriptions/${id}/action/?do=auto_renew`, { token: t.partnerKey, headers, env: e });

const flagOf = async (id: string) => (await subscriptionObject(env, id).get())?.autoRenew;

describe("two bare auto_renew toggles at once", () => {
  it("net out: each flips the flag as it stands when it applies", async () => {
    const t = await tenantWithCatalog(1, 100);
    for (let i = 0; i < 5; i++) {
      const id = await renewing(t);
      const answers = await Promise.all([toggle(t, id), toggle(t, id)]);
      expect(answers.map((a) => a.status)).toEqual([200, 200]);
      expect(answers.map((a) => a.body.auto_renew).sort()).toEqual([false, true]);
      expect(await flagOf(id)).toBe(true);
    }
  });

  it("net out on the chain's last term while an extension of it is being bought", async () => {
    // The extension's place is reserved after the term, and its term not created yet: the term's
    // flag is still the chain's (the extension takes it once created). Before, both toggles set
    // the flag read when accepted, as on an earlier term: both answered false, one flip lost.
    const t = await tenantWithCatalog(1, 100);
    for (let i = 0; i < 3; i++) {
      const id = await renewing(t);
      const slow = shardsHeld("create");
      const extension = call("POST", `/v1/subscriptions/${id}/action/?do=extend`, {
        token: t.partnerKey,
        env: slow.env,
      });
      await slow.reached;
      const answers = await Promise.all([toggle(t, id), toggle(t, id)]);
      expect(answers.map((a) => a.status)).toEqual([200, 200]);
      expect(answers.map((a) => a.body.auto_renew).sort()).toEqual([false, true]);
      slow.release();
      const extended = await expectOk(extension);
      await recoverAll(t);
      expect(await flagOf(id)).toBe(true);
      expect(await flagOf(extended.id)).toBe(true);
    }
    await expectBooksBalance(t);
  });

  it("under one If-Match: the second answers 412, the flag flipped once", async () => {
    const t = await tenantWithCatalog(1, 100);
    const id = await renewing(t);
    const etag = (await call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey })).headers.get("etag");
    const answers = await Promise.all([
      toggle(t, id, { "If-Match": etag as string }),
      toggle(t, id, { "If-Match": etag as string }),
    ]);
    expect(answers.map((a) => a.status).sort()).toEqual([200, 412]);
    expect(await flagOf(id)).toBe(false);
  });

  it("accepted as operations: each flips once, however often it runs", async () => {
    const t = await tenantWithCatalog(1, 100);
    const id = await renewing(t);
    const operations = keptQueue();
    const queued = { ...env, OPERATIONS: operations.queue } as Env;
    const accepted = await Promise.all([
      toggle(t, id, { Prefer: "respond-async" }, queued),
      toggle(t, id, { Prefer: "respond-async" }, queued),
    ]);
    expect(accepted.map((a) => a.status)).toEqual([202, 202]);
    const [one, two] = operations.sent.map((m: { opRef: string }) => m.opRef) as [string, string];
    // The first runs, and its work runs again (a redelivery after a run that died before it
    // finished): it flips once.
    await runOperation(env, one);
    expect(await flagOf(id)).toBe(false);
    const first = await findOperation(env, one, EVERYTHING);
    await perform(env, first?.payload as unknown as OperationPayload, { opRef: one });
    expect(await flagOf(id)).toBe(false);
    await runOperation(env, two);
    expect(await flagOf(id)).toBe(true);
  });

  it("keep the references of the last 32 toggles only: a term toggled often grows no further", async () => {
    const t = await tenantWithCatalog(1, 100);
    const id = await renewing(t);
    for (let i = 0; i < 34; i++) await expectOk(toggle(t, id));
    const r = await subscriptionObject(env, id).get();
    expect({ autoRenew: r?.autoRenew, kept: r?.toggledBy?.length }).toEqual({ autoRenew: true, kept: 32 });
  });

  it("given up after it applied, answers that it took effect though the flag was set back since", async () => {
    // Known by its reference: by the flag it set, the give-up took it for not applied and failed it
    // ("given up"), though it had flipped the chain's flag.
    const t = await tenantWithCatalog(1, 100);
    const id = await renewing(t);
    const operations = keptQueue();
    const accepted = await toggle(t, id, { Prefer: "respond-async" }, {
      ...env,
      OPERATIONS: operations.queue,
    } as Env);
    expect(accepted.status).toBe(202);
    const opRef = operations.sent[0].opRef as string;
    // Its last attempt applies it and dies before storing its answer; the partner sets the flag back.
    const op = await findOperation(env, opRef, EVERYTHING);
    await perform(env, op?.payload as unknown as OperationPayload, { opRef });
    await expectOk(
      call("PATCH", `/v1/subscriptions/${id}/`, { token: t.partnerKey, body: { auto_renew: true } }),
    );
    await giveUpOperation(env, opRef);
    expect((await findOperation(env, opRef, EVERYTHING))?.status).toBe("succeeded");
    expect(await flagOf(id)).toBe(true);
  });
});
