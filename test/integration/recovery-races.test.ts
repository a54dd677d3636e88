import {
  createExecutionContext,
  createMessageBatch,
  getQueueResult,
  runDurableObjectAlarm,
  runInDurableObject,
} from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import type { RenewalMessage } from "../../src/app/renewals";
import { assignIds, buy, plan } from "../../src/app/subscriptions";
import { armFault, disarmFaults } from "../../src/domain/faults";
import { subscriptionId, subscriptionIdBeside } from "../../src/domain/ids";
import type { SubscriptionRecord } from "../../src/domain/subscriptions";
import worker from "../../src/index";
import { ledgerOf } from "../../src/objects/quota-ledger";
import {
  type SubscriptionObject,
  subscriptionObject,
  subscriptionShard,
} from "../../src/objects/subscription-object";
import { expectBooksBalance, purchaseDiedAt, recoverAll } from "../books";
import {
  call,
  dueMonthlyTerm,
  expectOk,
  failingD1,
  gate,
  type Tenant,
  tenantWithCatalog,
  usageOf,
} from "../helpers";

/**
 * The recovery sweep racing the work it settles: a request it took for dead that was only slow,
 * and a renewal delivered again after its first attempt was undone. Reproduced by a review of
 * the purchase path (before the fix, each left a live or charged subscription under a rejected
 * commission, or expired a subscription that should have renewed).
 */

afterEach(() => disarmFaults());

/**
 * Bindings whose subscription shards' `create` waits at a gate: a request stalled between its
 * issue and its create (`before`), or between its create and what follows (`after`).
 */
function stalledAtCreate(when: "before" | "after" = "before") {
  const stall = gate();
  const shards = env.SUBSCRIPTION;
  const stalled = {
    idFromName: (name: string) => shards.idFromName(name),
    get: (id: DurableObjectId) => {
      const stub = shards.get(id) as unknown as Record<string, (...args: unknown[]) => unknown>;
      return new Proxy(
        {},
        {
          get: (_, method) =>
            method === "then"
              ? undefined
              : async (...args: unknown[]) => {
                  if (method !== "create") return stub[method as string]?.(...args);
                  if (when === "before") await stall.pass();
                  const answer = await stub[method as string]?.(...args);
                  if (when === "after") await stall.pass();
                  return answer;
                },
        },
      );
    },
  };
  return { env: { ...env, SUBSCRIPTION: stalled as unknown as Env["SUBSCRIPTION"] }, ...stall };
}

/** A purchase of 2 `mem` whose request stalls at its create until the sweep has undone it. */
async function undoneWhileStalled(t: Tenant, when: "before" | "after" = "before") {
  const held = (await usageOf(t, 0, "mem")).usage;
  const now = new Date();
  const planned = (
    await plan(
      env,
      t.partnerId,
      [{ customer: t.customers[0] as string, resource: "mem", amount: 2, period: "1 month" }],
      now,
    )
  ).subscriptions;
  const ids = assignIds(planned);
  const slow = stalledAtCreate(when);
  const original = buy(slow.env, t.partnerId, planned, ids, now).then(
    () => "answered",
    (error: unknown) => String(error),
  );
  await slow.reached;
  await recoverAll(t);
  expect(await usageOf(t, 0, "mem")).toMatchObject({ usage: held, pending: 0 });
  return { planned, ids, original, release: slow.release };
}

async function expectUndone(
  t: Tenant,
  ids: { orders: Record<string, string>; subscriptions: string[] },
  memHeldBefore = 0,
) {
  const id = ids.subscriptions[0] as string;
  expect((await subscriptionObject(env, id).get())?.endReason).toBe("failed");
  const order = await env.DB.prepare("SELECT state FROM orders WHERE id = ?")
    .bind(Object.values(ids.orders)[0])
    .first<{ state: string }>();
  expect(order?.state ?? "never written").not.toBe("completed");
  expect(await usageOf(t, 0, "mem")).toMatchObject({ usage: memHeldBefore, pending: 0 });
  await expectBooksBalance(t);
}

describe("a request slower than the recovery bound", () => {
  for (const retried of [false, true]) {
    const what = retried
      ? "and its retry with the same ids both stay undone, whichever comes first"
      : "creates nothing live once the sweep undid its purchase: it answers 409 and writes no order";
    it(what, async () => {
      const t = await tenantWithCatalog(1, 100);
      const { planned, ids, original, release } = await undoneWhileStalled(t);
      if (retried) {
        await expect(buy(env, t.partnerId, planned, ids, new Date())).rejects.toThrow("given up");
      }
      // Were it to die right after its create, nothing could undo what it made.
      armFault("purchase.created");
      release();
      expect(await original).toMatch("given up");
      disarmFaults();
      await recoverAll(t);
      await expectUndone(t, ids);
    });
  }
});

describe("a request slower than the recovery bound after its create", () => {
  it("whose shard could not write its order cannot complete that order once the sweep undid it", async () => {
    const t = await tenantWithCatalog(1, 100);
    // The shard's D1 batch fails: the order does not ride with the subscription, the request is to write it.
    await shardDatabase(t, failingD1(env.DB, "batch"));
    const { ids, original, release } = await undoneWhileStalled(t, "after");
    // It writes its order completed, and dies before its accept could tell it the purchase was undone.
    armFault("purchase.ordered");
    release();
    expect(await original).toMatch("purchase.ordered");
    disarmFaults();
    await shardDatabase(t, env.DB);
    await recoverAll(t);
    await expectUndone(t, ids);
  });
});

/** Bindings for the shard of `t`'s first customer: its D1 replaced by `db`. */
async function shardDatabase(t: Tenant, db: D1Database) {
  const shard = subscriptionShard(env, subscriptionId(t.customers[0] as string));
  await runInDurableObject(shard, (instance: SubscriptionObject) => {
    const own = instance as unknown as { env: Env };
    own.env = { ...own.env, DB: db };
  });
  return shard;
}

describe("a subscription failed because its purchase was undone", () => {
  /** `t`'s first customer holds 2 `mem` of a live subscription. */
  const holdingTwo = async () => {
    const t = await tenantWithCatalog(1, 100);
    await expectOk(
      call("POST", "/v1/subscriptions/", {
        token: t.partnerKey,
        body: { objects: [{ customer: t.customers[0], resource: "mem", amount: 2, period: "1 month" }] },
      }),
      201,
    );
    return t;
  };

  it("created after the undo, releases nothing when its shard's alarm runs it", async () => {
    const t = await holdingTwo();
    const { ids, original, release } = await undoneWhileStalled(t);
    // Its late create's push fails: the shard's alarm is to run it again.
    const shard = await shardDatabase(t, failingD1(env.DB, "batch"));
    release();
    expect(await original).toMatch("given up");
    await shardDatabase(t, env.DB);
    expect(await runDurableObjectAlarm(shard)).toBe(true);
    expect(await usageOf(t, 0, "mem")).toMatchObject({ usage: 2, pending: 0 });
    await expectUndone(t, ids, 2);
  });

  it("created before it, releases nothing when its shard's alarm runs it", async () => {
    const t = await holdingTwo();
    const { ids } = await purchaseDiedAt(t, "purchase.created", ["mem", "cpu"]);
    const shard = await shardDatabase(t, failingD1(env.DB, "batch"));
    await recoverAll(t);
    await shardDatabase(t, env.DB);
    expect((await subscriptionObject(env, ids.subscriptions[0] as string).get())?.endReason).toBe("failed");
    expect(await runDurableObjectAlarm(shard)).toBe(true);
    expect(await usageOf(t, 0, "mem")).toMatchObject({ usage: 2, pending: 0 });
    await recoverAll(t);
    await expectBooksBalance(t);
  });
});

describe("an extension given up before it was created, then created failed by its slow run", () => {
  it("leaves its place free: the chain is extended by hand at once", async () => {
    const t = await tenantWithCatalog(1, 100);
    const bought = await expectOk(
      call("POST", "/v1/subscriptions/", {
        token: t.partnerKey,
        body: { objects: [{ customer: t.customers[0], resource: "cpu", amount: 1, period: "1 month" }] },
      }),
      201,
    );
    const base = bought.objects[0].id as string;
    const record = (await subscriptionObject(env, base).get()) as SubscriptionRecord;
    // An extension's run reserved the place after it, then stalled; its undo (an operation given
    // up: it knows no predecessor to give the place back to) failed what did not exist yet.
    const x = subscriptionIdBeside(base);
    expect((await subscriptionObject(env, base).reserveNext(x)).ok).toBe(true);
    await subscriptionObject(env, x).fail(new Date());
    // The slow run creates it, failed, and dies before its own undo.
    const late = await subscriptionObject(env, x).create({
      ...record,
      id: x,
      previousId: base,
      heldBy: base,
      version: 0,
    });
    expect(late.record.endReason).toBe("failed");

    const extended = await expectOk(
      call("POST", `/v1/subscriptions/${base}/action/?do=extend`, { token: t.partnerKey, body: {} }),
    );
    expect(extended.extends).toBe(base);
    expect(await usageOf(t, 0, "cpu")).toMatchObject({ usage: 1, pending: 0 });
    await expectBooksBalance(t);
  });
});

describe("a renewal delivered again after the sweep undid its first attempt", () => {
  it("renews with ids of its own instead of taking the undo for a refusal and expiring the subscription", async () => {
    const t = await tenantWithCatalog(1, 100);
    const y = new Date().getUTCFullYear() + 40;
    const sub = await dueMonthlyTerm(t, y);
    // A late run: a minute after the term's end, when a refused renewal expires the subscription.
    const at = sub.over.toISOString();
    const deliver = async () => {
      const batch = createMessageBatch<RenewalMessage>("stratus-renewals", [
        {
          id: `r-${crypto.randomUUID()}`,
          timestamp: new Date(),
          attempts: 1,
          body: { subscription: sub.id, at },
        },
      ]);
      await worker.queue(batch, env);
      return getQueueResult(batch, createExecutionContext());
    };
    armFault("purchase.issued");
    expect((await deliver()).retryMessages).toHaveLength(1);
    disarmFaults();
    const renewal = (await subscriptionObject(env, sub.id).get())?.renewal as { order: string };
    // The sweep's undo got as far as its first step, the reject, before it gave the place back.
    expect(
      await ledgerOf(env, t.customers[0] as string).settleReferenced(`purchase:${renewal.order}`, "reject"),
    ).toBe("rejected");

    expect((await deliver()).retryMessages).toHaveLength(0);
    const root = await expectOk(call("GET", `/v1/subscriptions/${sub.id}/`, { token: t.partnerKey }));
    expect(root).toMatchObject({ end_reason: null, renewal_error: null });
    expect(root.descendants).toHaveLength(1);
    expect(await usageOf(t, 0, "cpu")).toMatchObject({ usage: 2, pending: 0 });
    await expectBooksBalance(t);
  });
});
