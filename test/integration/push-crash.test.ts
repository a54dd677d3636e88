import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { armFault, disarmFaults } from "../../src/domain/faults";
import { type SubscriptionObject, subscriptionShard } from "../../src/objects/subscription-object";
import { PUSH_CHECK_AFTER_MS } from "../../src/objects/unpushed-changes";
import { expectBooksBalance } from "../books";
import { call, expectOk, failingD1, shardAlarmOf, tenantWithCatalog } from "../helpers";
import { buyFor } from "../legacy";

afterEach(() => disarmFaults());

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** What D1 has of subscription `id`: its read-model row and its usage lines. */
async function inD1(id: string) {
  const row = await env.DB.prepare("SELECT ended_at, running_since, version FROM subscriptions WHERE id = ?")
    .bind(id)
    .first<{ ended_at: string | null; running_since: number | null; version: number }>();
  const lines = await env.DB.prepare(
    "SELECT amount_minor FROM charges WHERE subscription_id = ? AND kind = 'usage'",
  )
    .bind(id)
    .all();
  return { row, usageLines: lines.results.length };
}

/**
 * The shard's alarm is set for the push check of the change committed before `committedBy` at the
 * latest; the check is then made due, as that much time passing would.
 */
async function checkDue(id: string, committedBy: number): Promise<void> {
  await runInDurableObject(subscriptionShard(env, id), async (_i, state) => {
    const alarm = await state.storage.getAlarm();
    expect(alarm).not.toBeNull();
    expect(alarm).toBeLessThanOrEqual(committedBy + PUSH_CHECK_AFTER_MS);
    state.storage.sql.exec("UPDATE unpushed SET at = at - ?", PUSH_CHECK_AFTER_MS);
  });
}

/**
 * A change is committed in the subscription's shard, then pushed: to the D1 read model, the usage
 * lines to the charges, the events to the webhooks. An instance that dies in between (a deploy, an
 * exceeded limit, a lost machine) leaves the push to the shard's alarm, which the commit set.
 */
describe("a change whose push died with its instance", () => {
  it("a cloud's stop: the read model and its usage line are written by the shard's alarm", async () => {
    const t = await tenantWithCatalog(1, 100);
    const id = await buyFor(t, "cumulus");
    await expectOk(call("POST", `/v1/subscriptions/${id}/action/?do=start`, { token: t.partnerKey }));
    await sleep(1_100);
    armFault("subscription.committed");
    const stop = await call("POST", `/v1/subscriptions/${id}/action/?do=stop`, { token: t.partnerKey });
    expect(stop.status).toBe(500);
    const committedBy = Date.now();
    const shard = subscriptionShard(env, id);
    await evictDurableObject(shard);
    const before = await inD1(id);
    expect(before.row?.running_since).not.toBeNull();
    expect(before.usageLines).toBe(0);
    // Run before the check is due, the alarm leaves it.
    expect(await runDurableObjectAlarm(shard)).toBe(true);
    expect((await inD1(id)).usageLines).toBe(0);

    await checkDue(id, committedBy);
    expect(await runDurableObjectAlarm(shard)).toBe(true);
    const after = await inD1(id);
    expect(after.row?.running_since).toBeNull();
    expect(after.usageLines).toBe(1);
    await expectBooksBalance(t);
  });

  it("a change that was pushed is only forgotten by its check: nothing is pushed again", async () => {
    const t = await tenantWithCatalog(1, 100);
    const id = await buyFor(t, "cpu", { period: "1 month" });
    const committedBy = Date.now();
    await checkDue(id, committedBy);
    // A new instance knows nothing of its pushes: the read model tells. With D1 refusing writes, a
    // push would fail and the check stay; it goes, since the version is in the read model.
    const shard = subscriptionShard(env, id);
    await evictDurableObject(shard);
    await runInDurableObject(shard, (instance: SubscriptionObject) => {
      const own = instance as unknown as { env: Env };
      own.env = { ...own.env, DB: failingD1(env.DB, "batch") };
    });
    expect(await runDurableObjectAlarm(shard)).toBe(true);
    expect((await shardAlarmOf(id)).check).toBeNull();
    await expectBooksBalance(t);
  });

  it("a cancel: the read model shows it ended once the shard's alarm ran", async () => {
    const t = await tenantWithCatalog(1, 100);
    const id = await buyFor(t, "cpu", { period: "1 month" });
    armFault("subscription.committed");
    expect((await call("DELETE", `/v1/subscriptions/${id}/`, { token: t.partnerKey })).status).toBe(500);
    const committedBy = Date.now();
    const shard = subscriptionShard(env, id);
    await evictDurableObject(shard);
    expect((await inD1(id)).row?.ended_at).toBeNull();

    await checkDue(id, committedBy);
    expect(await runDurableObjectAlarm(shard)).toBe(true);
    expect((await inD1(id)).row?.ended_at).not.toBeNull();
    await expectBooksBalance(t);
  });
});
