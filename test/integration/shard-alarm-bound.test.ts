import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { CHECKS_PER_ALARM, WAKES_PER_ALARM } from "../../src/objects/shard-alarm";
import { Subscription } from "../../src/objects/subscription";
import {
  type SubscriptionObject,
  subscriptionObject,
  subscriptionShard,
} from "../../src/objects/subscription-object";
import { PUSH_CHECK_AFTER_MS } from "../../src/objects/unpushed-changes";
import { expectBooksBalance } from "../books";
import { call, expectOk, failingD1, type Tenant, tenantWithCatalog } from "../helpers";

/**
 * A shard's one alarm runs what its subscriptions wait for: their wakes and the push checks of
 * their commits. Many come due together (a customer's terms, all in one shard, bought together,
 * ending together; D1 down for a while, then every push retried). One run of the alarm ran every
 * one of them, however many: past what one invocation may do (its subrequests, D1's 1,000 queries,
 * its CPU time) the whole run fails, and is retried as a whole. Now a run takes at most
 * WAKES_PER_ALARM wakes and CHECKS_PER_ALARM checks, the earliest first, and sets the alarm again
 * at once for the rest: each is run, and once.
 */

const COUNT = Math.max(WAKES_PER_ALARM, CHECKS_PER_ALARM) + 20;

const alarm = Subscription.prototype.alarm;
afterEach(() => {
  Subscription.prototype.alarm = alarm;
});

/** `COUNT` subscriptions of one customer, in one shard, bought together. */
async function boughtTogether(t: Tenant): Promise<string[]> {
  const bought = await expectOk(
    call("POST", "/v1/subscriptions/", {
      token: t.partnerKey,
      body: {
        objects: Array.from({ length: COUNT }, () => ({
          customer: t.customers[0],
          resource: "cpu",
          amount: 1,
          period: "1 month",
        })),
      },
    }),
    201,
  );
  const ids = bought.objects.map((o: { id: string }) => o.id);
  expect(new Set(ids.map((id: string) => subscriptionShard(env, id).id.toString())).size).toBe(1);
  return ids;
}

const setDb = (id: string, db: D1Database) =>
  runInDurableObject(subscriptionShard(env, id), (instance: SubscriptionObject) => {
    const own = instance as unknown as { env: Env };
    own.env = { ...own.env, DB: db };
  });

const autoRenewing = async (ids: string[]) => {
  const rows = await env.DB.prepare(
    `SELECT count(*) AS n FROM subscriptions WHERE auto_renew = 1 AND id IN (SELECT value FROM json_each(?))`,
  )
    .bind(JSON.stringify(ids))
    .first<{ n: number }>();
  return rows?.n ?? 0;
};

const shardState = (id: string) =>
  runInDurableObject(subscriptionShard(env, id), async (_i, state) => ({
    wakes: state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM wakes").one().n,
    checks: state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM unpushed").one().n,
    alarm: await state.storage.getAlarm(),
  }));

describe("a shard's alarm with more due than one run takes", () => {
  it(`runs at most ${WAKES_PER_ALARM} wakes a run, the rest in the next at once: each once`, async () => {
    const t = await tenantWithCatalog(1, 1000);
    const ids = await boughtTogether(t);
    const shard = subscriptionShard(env, ids[0] as string);
    // D1 is down while each changes: each push fails, and is retried on its wake.
    await setDb(ids[0] as string, failingD1(env.DB, "prepare", "batch"));
    for (const id of ids) expect((await subscriptionObject(env, id).setAutoRenew(true)).ok).toBe(true);
    await setDb(ids[0] as string, env.DB);
    // Time passes: every retry is due.
    await runInDurableObject(shard, (_i, state) => {
      state.storage.sql.exec("UPDATE wakes SET at = at - 600000");
    });
    expect((await shardState(ids[0] as string)).wakes).toBe(COUNT);

    const runs = new Map<string, number>();
    Subscription.prototype.alarm = function (this: Subscription) {
      const id = (this as unknown as { id: string }).id;
      runs.set(id, (runs.get(id) ?? 0) + 1);
      return alarm.call(this);
    };
    for (let run = 0; run < 10; run++) {
      const left = (await shardState(ids[0] as string)).wakes;
      if (left === 0) break;
      const ranBefore = [...runs.values()].reduce((a, b) => a + b, 0);
      const now = Date.now();
      expect(await runDurableObjectAlarm(shard)).toBe(true);
      const ran = [...runs.values()].reduce((a, b) => a + b, 0) - ranBefore;
      expect(ran, `run ${run}`).toBeLessThanOrEqual(WAKES_PER_ALARM);
      const after = await shardState(ids[0] as string);
      expect(after.wakes).toBe(left - ran);
      // What is left is run next, at once.
      if (after.wakes > 0) expect(after.alarm).toBeLessThanOrEqual(now + 1000);
    }
    expect((await shardState(ids[0] as string)).wakes).toBe(0);
    expect(runs.size).toBe(COUNT);
    expect([...runs.values()].every((n) => n === 1)).toBe(true);
    expect(await autoRenewing(ids)).toBe(COUNT);
    await expectBooksBalance(t);
  }, 120_000);

  it(`makes at most ${CHECKS_PER_ALARM} push checks a run, the rest in the next at once: none lost`, async () => {
    const t = await tenantWithCatalog(1, 1000);
    const ids = await boughtTogether(t);
    const shard = subscriptionShard(env, ids[0] as string);
    // Committed, never pushed: the instance died after each commit (as if D1 had been down, and
    // the retries forgotten with it).
    await setDb(ids[0] as string, failingD1(env.DB, "prepare", "batch"));
    for (const id of ids) expect((await subscriptionObject(env, id).setAutoRenew(true)).ok).toBe(true);
    await runInDurableObject(shard, (_i, state) => {
      state.storage.sql.exec("DELETE FROM wakes");
      state.storage.sql.exec("UPDATE unpushed SET at = at - ?", PUSH_CHECK_AFTER_MS + 1000);
    });
    await evictDurableObject(shard);
    expect(await autoRenewing(ids)).toBe(0);
    const due = (await shardState(ids[0] as string)).checks;
    expect(due).toBeGreaterThan(CHECKS_PER_ALARM);

    const now = Date.now();
    expect(await runDurableObjectAlarm(shard)).toBe(true);
    const first = await shardState(ids[0] as string);
    expect(first.checks).toBe(due - CHECKS_PER_ALARM);
    expect(first.alarm).toBeLessThanOrEqual(now + 1000);
    expect(await autoRenewing(ids)).toBe(CHECKS_PER_ALARM);

    for (let run = 0; run < 10 && (await shardState(ids[0] as string)).checks > 0; run++) {
      expect(await runDurableObjectAlarm(shard)).toBe(true);
    }
    expect((await shardState(ids[0] as string)).checks).toBe(0);
    expect(await autoRenewing(ids)).toBe(COUNT);
    await expectBooksBalance(t);
  }, 120_000);
});
