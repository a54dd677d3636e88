import {
  createExecutionContext,
  createMessageBatch,
  getQueueResult,
  runInDurableObject,
} from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { runOperation } from "../../src/app/operations";
import { recoverPurchase } from "../../src/app/recovery";
import { type RenewalMessage, renewOrExpire } from "../../src/app/renewals";
import { assignIds, buy, plan } from "../../src/app/subscriptions";
import type { MonthCloseMessage } from "../../src/app/usage";
import { armFault, disarmFaults } from "../../src/domain/faults";
import { subscriptionId } from "../../src/domain/ids";
import worker from "../../src/index";
import type { SubscriptionObject } from "../../src/objects/subscription-object";
import { subscriptionObject, subscriptionShard } from "../../src/objects/subscription-object";
import { expectBooksBalance, recoverAll } from "../books";
import {
  call,
  dueMonthlyTerm,
  expectOk,
  failingD1,
  keptQueue,
  renewalCharges,
  shardsHeld,
  type Tenant,
  tenantWithCatalog,
  usageOf,
} from "../helpers";
import { abandonPlace } from "../legacy";

/**
 * Renewals racing what undoes or ends their term (a review of 2026-12-02 found each of these
 * billing or holding what it should not): a term whose purchase has not taken effect, an undone
 * renewal attempt, and a cancel while the renewal is on its way.
 */

afterEach(() => disarmFaults());

let year = new Date().getUTCFullYear() + 45;
const noon = (y: number, month: number, day: number) => new Date(Date.UTC(y, month - 1, day, 12));

const read = (t: Tenant, id: string) =>
  expectOk(call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey }));

let delivered = 0;
async function deliver(messages: Array<RenewalMessage | MonthCloseMessage>) {
  const batch = createMessageBatch<RenewalMessage | MonthCloseMessage>(
    "stratus-renewals",
    messages.map((body) => ({ id: `race-${delivered++}`, timestamp: new Date(), attempts: 1, body })),
  );
  await worker.queue(batch as MessageBatch<never>, env);
  return getQueueResult(batch, createExecutionContext());
}

/** The D1 that the shard of `t`'s first customer writes to. */
async function shardDatabase(t: Tenant, db: D1Database) {
  await runInDurableObject(
    subscriptionShard(env, subscriptionId(t.customers[0] as string)),
    (instance: SubscriptionObject) => {
      const own = instance as unknown as { env: Env };
      own.env = { ...own.env, DB: db };
    },
  );
}

/** A first renewal attempt whose term is created but whose order never is (D1 refuses batches). */
async function renewalLeftUnordered(t: Tenant, id: string, at: Date) {
  await shardDatabase(t, failingD1(env.DB, "batch"));
  await expect(renewOrExpire({ ...env, DB: failingD1(env.DB, "batch") }, id, at)).rejects.toThrow();
  await shardDatabase(t, env.DB);
  const first = (await subscriptionObject(env, id).get())?.renewal;
  if (!first) throw new Error("no renewal planned");
  return {
    ids: {
      orders: { [t.customers[0] as string]: first.order },
      subscriptions: [first.subscription],
      previous: id,
    },
    opRef: null,
  };
}

/** A due term whose first renewal attempt was undone by an undo that died before giving its place back. */
async function renewalUndoDiedHoldingPlace() {
  const t = await tenantWithCatalog(1, 100);
  const term = await dueMonthlyTerm(t, year++);
  const attempt = await renewalLeftUnordered(t, term.id, term.before);
  await expect(
    recoverPurchase(shardsHeld("releaseNext", { dies: true }).env, attempt, new Date()),
  ).rejects.toThrow("died");
  return { t, ...term };
}

describe("a renewal", () => {
  it("waits for its term's purchase to take effect, and follows nothing the sweep undid", async () => {
    const t = await tenantWithCatalog(1, 100);
    const y = year++;
    const now = new Date();
    const objects = [
      { resource: "mem", amount: 2, auto_renew: true },
      { resource: "cpu", amount: 1 },
    ].map((o) => ({ customer: t.customers[0] as string, start_time: noon(y, 3, 1), period: "1 week", ...o }));
    const planned = (await plan(env, t.partnerId, objects, now)).subscriptions;
    const ids = assignIds(planned);
    // Answered at once, its request dies before its orders: it has not taken effect.
    armFault("purchase.created");
    await expect(buy(env, t.partnerId, planned, ids, now)).rejects.toThrow("purchase.created");
    const mem = ids.subscriptions[0] as string;
    const term = await subscriptionObject(env, mem).get();
    const at = new Date(Date.parse(term?.endTime as string) - 60_000);
    expect((await deliver([{ subscription: mem, at: at.toISOString() }])).retryMessages).toEqual([]);
    expect((await subscriptionObject(env, mem).get())?.nextId).toBeNull();
    await recoverAll(t);
    expect((await subscriptionObject(env, mem).get())?.endReason).toBe("failed");
    await deliver([{ subscription: mem, at: at.toISOString() }]);
    expect((await subscriptionObject(env, mem).get())?.nextId).toBeNull();
    expect(await renewalCharges(t)).toEqual([]);
    expect(await usageOf(t, 0, "mem")).toMatchObject({ usage: 0, pending: 0 });
    await expectBooksBalance(t);
  });

  it("whose attempt is being undone when the next run reads it renews the term, not expires it", async () => {
    const t = await tenantWithCatalog(1, 100);
    const { id, before, over } = await dueMonthlyTerm(t, year++);
    const attempt = await renewalLeftUnordered(t, id, before);
    // The sweep's undo has failed the renewal term and not given its place back yet.
    const slow = shardsHeld("releaseNext");
    const undo = recoverPurchase(slow.env, attempt, new Date());
    await slow.reached;
    expect((await deliver([{ subscription: id, at: over.toISOString() }])).retryMessages).toEqual([]);
    slow.release();
    expect(await undo).toBe("undone");
    await deliver([{ subscription: id, at: over.toISOString() }]);
    await recoverAll(t);
    const root = await read(t, id);
    expect({ end_reason: root.end_reason, renewed: root.descendants.length }).toEqual({
      end_reason: null,
      renewed: 1,
    });
    expect(await renewalCharges(t)).toHaveLength(1);
    await expectBooksBalance(t);
  });

  it("whose undo died before giving its place back is planned again, and renews the term once", async () => {
    const { t, id, before, over } = await renewalUndoDiedHoldingPlace();
    await deliver([{ subscription: id, at: before.toISOString() }]);
    await recoverAll(t);
    await deliver([{ subscription: id, at: over.toISOString() }]);
    await deliver([{ subscription: id, at: over.toISOString() }]);
    await recoverAll(t);
    const root = await read(t, id);
    expect({ end_reason: root.end_reason, renewal_error: root.renewal_error }).toEqual({
      end_reason: null,
      renewal_error: null,
    });
    expect(await renewalCharges(t)).toHaveLength(1);
    await expectBooksBalance(t);
  });

  it("whose undo died before giving its place back leaves its term the chain's last: two toggles net out", async () => {
    // The failed renewal still named after the term is nothing live: the term's flag is the
    // chain's, so each bare toggle flips it as it stands when it runs. Taken for an earlier term,
    // each would set the flag read when it was accepted: both set it off, one flip lost.
    const { t, id } = await renewalUndoDiedHoldingPlace();
    const failed = (await subscriptionObject(env, id).get())?.nextId as string;
    expect((await subscriptionObject(env, failed).get())?.endReason).toBe("failed");
    const operations = keptQueue();
    for (let i = 0; i < 2; i++) {
      const accepted = await call("POST", `/v1/subscriptions/${id}/action/?do=auto_renew`, {
        token: t.partnerKey,
        headers: { Prefer: "respond-async" },
        env: { ...env, OPERATIONS: operations.queue } as Env,
      });
      expect(accepted.status).toBe(202);
    }
    const [one, two] = operations.sent.map((m: { opRef: string }) => m.opRef) as [string, string];
    await runOperation(env, one);
    expect((await subscriptionObject(env, id).get())?.autoRenew).toBe(false);
    await runOperation(env, two);
    expect((await subscriptionObject(env, id).get())?.autoRenew).toBe(true);
  });

  it("whose undo died before giving its place back leaves auto_renew to be turned on again", async () => {
    // The failed renewal still named after the term is not the chain's last term, ended: the chain
    // may still go on from the term, so turning the flag on is not refused as for a cancelled chain.
    const { t, id } = await renewalUndoDiedHoldingPlace();
    const path = `/v1/subscriptions/${id}/action/?do=auto_renew`;
    await expectOk(call("POST", path, { token: t.partnerKey, body: { auto_renew: false } }));
    const on = await call("POST", path, { token: t.partnerKey, body: { auto_renew: true } });
    expect(on.status, on.text).toBe(200);
    expect((await subscriptionObject(env, id).get())?.autoRenew).toBe(true);
  });

  it("whose undo died before giving its place back leaves the place to an extension by hand", async () => {
    const { t, id, over } = await renewalUndoDiedHoldingPlace();
    // Before, the extension found the place taken, walked on to the failed renewal, found it
    // created and tried again, a thousand times (some 5,000 object calls), then answered 409:
    // its 50th read dies here.
    const extended = await call("POST", `/v1/subscriptions/${id}/action/?do=extend`, {
      token: t.partnerKey,
      body: {},
      env: shardsHeld("get", { nth: 50, dies: true }).env,
    });
    expect(extended.status).toBe(200);
    // The extension continues the chain: the renewal that follows has nothing to renew.
    await deliver([{ subscription: id, at: over.toISOString() }]);
    await recoverAll(t);
    const root = await read(t, id);
    expect({ end_reason: root.end_reason, terms: root.descendants.length }).toEqual({
      end_reason: null,
      terms: 1,
    });
    expect(await renewalCharges(t)).toEqual([]);
    await expectBooksBalance(t);
  });

  it("whose undo died before giving its place back is not expired by an expiry planned before it", async () => {
    // A run planned the expiry while auto_renew was off; the flag went on, and this renewal was
    // bought and undone meanwhile. The planned expiry finds the place still the undone renewal's:
    // as if nothing followed, the term is due for renewal, and is left for the next plan.
    const { t, id, over } = await renewalUndoDiedHoldingPlace();
    const ended = await subscriptionObject(env, id).expire(over, null, true);
    expect(ended.ok && ended.value.endedAt).toBeNull();
    await deliver([{ subscription: id, at: over.toISOString() }]);
    await recoverAll(t);
    const root = await read(t, id);
    expect({ end_reason: root.end_reason, terms: root.descendants.length }).toEqual({
      end_reason: null,
      terms: 1,
    });
    expect(await renewalCharges(t)).toHaveLength(1);
    await expectBooksBalance(t);
  });

  it("bought by one delivery keeps its place when another gives its own attempt back", async () => {
    // A second delivery of the renewal that found its term's purchase open (or was refused) gives
    // the place back only with the renewal given up; one created already is live and keeps it,
    // else an extension by hand would buy that term's time a second time.
    const t = await tenantWithCatalog(1, 100);
    const { id, before } = await dueMonthlyTerm(t, year++);
    expect(await renewOrExpire(env, id, before)).toBe("renewed");
    const renewal = (await subscriptionObject(env, id).get())?.renewal?.subscription as string;
    await subscriptionObject(env, id).releaseNext(renewal, false, true);
    expect((await subscriptionObject(env, id).get())?.nextId).toBe(renewal);
    const extended = await expectOk(
      call("POST", `/v1/subscriptions/${id}/action/?do=extend`, { token: t.partnerKey, body: {} }),
    );
    // It follows the renewal, not the term the renewal already continues.
    expect(extended.start_time).toBe((await read(t, renewal)).end_time);
    await expectBooksBalance(t);
  });

  it("that died once planned keeps its place past the recovery bound: the next delivery buys it under its ids", async () => {
    // A renewal's place not created is never abandoned (its own ids finish it): freed after the
    // bound, the next delivery would plan new ids, and the first attempt, still on its way,
    // would buy the same term under the old ones.
    const t = await tenantWithCatalog(1, 100);
    const { id, before } = await dueMonthlyTerm(t, year++);
    armFault("renewal.planned");
    expect((await deliver([{ subscription: id, at: before.toISOString() }])).retryMessages).toHaveLength(1);
    disarmFaults();
    const planned = (await subscriptionObject(env, id).get())?.renewal?.subscription;
    expect(planned).toBeDefined();
    await abandonPlace(id);
    await deliver([{ subscription: id, at: before.toISOString() }]);
    await recoverAll(t);
    expect((await read(t, id)).descendants).toEqual([planned]);
    expect(await renewalCharges(t)).toHaveLength(1);
    await expectBooksBalance(t);
  });
});

describe("an expiry planned before auto_renew was turned on", () => {
  it("renews the term in the same run instead, once its expiry finds the flag on", async () => {
    // The run planned the expiry (auto_renew off), then the partner turned it on (answered 200):
    // the expiry leaves the term as it is and the run plans again, now a renewal.
    const t = await tenantWithCatalog(1, 100);
    const { id, over } = await dueMonthlyTerm(t, year++);
    expect((await subscriptionObject(env, id).setAutoRenew(false)).ok).toBe(true);
    const held = shardsHeld("expire");
    const running = renewOrExpire(held.env, id, over);
    await held.reached;
    await expectOk(
      call("POST", `/v1/subscriptions/${id}/action/?do=auto_renew`, {
        token: t.partnerKey,
        body: { auto_renew: true },
      }),
    );
    held.release();
    expect(await running).toBe("renewed");
    expect((await read(t, id)).descendants).toHaveLength(1);
    expect(await renewalCharges(t)).toHaveLength(1);
    await expectBooksBalance(t);
  });
});

describe("a cancel of the due term", () => {
  it("while its renewal is on its way gives the renewal up: nothing follows, nothing is billed", async () => {
    const t = await tenantWithCatalog(1, 100);
    const { id, before } = await dueMonthlyTerm(t, year++);
    const slow = shardsHeld("create");
    const running = renewOrExpire(slow.env, id, before);
    await slow.reached;
    const cancelled = await expectOk(call("DELETE", `/v1/subscriptions/${id}/`, { token: t.partnerKey }));
    expect(cancelled).toMatchObject({ end_reason: "cancelled", descendants: [] });
    slow.release();
    expect(await running).toBe("skipped");
    await recoverAll(t);
    expect((await read(t, id)).descendants).toEqual([]);
    expect(await renewalCharges(t)).toEqual([]);
    expect(await usageOf(t, 0, "cpu")).toMatchObject({ usage: 0, pending: 0 });
    await expectBooksBalance(t);
  });

  it("after its renewal died once planned releases the hold at once; the redelivery renews nothing", async () => {
    const t = await tenantWithCatalog(1, 100);
    const { id, before } = await dueMonthlyTerm(t, year++);
    armFault("renewal.planned");
    expect((await deliver([{ subscription: id, at: before.toISOString() }])).retryMessages).toHaveLength(1);
    await expectOk(call("DELETE", `/v1/subscriptions/${id}/`, { token: t.partnerKey }));
    expect(await usageOf(t, 0, "cpu")).toMatchObject({ usage: 0, pending: 0 });
    await deliver([{ subscription: id, at: before.toISOString() }]);
    expect(await renewalCharges(t)).toEqual([]);
    await expectBooksBalance(t);
  });
});
