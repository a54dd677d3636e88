import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { type SubscriptionObject, subscriptionShard } from "../../src/objects/subscription-object";
import { tenantWithCatalog } from "../helpers";
import { buyFor, legacyObject, toObjectOfItsOwn } from "../legacy";

/**
 * An object of its own from before shards hands its subscription over to its shard when its alarm
 * fires. A hand-over that failed (the shard unreachable) threw out of the alarm: the platform retries
 * a throwing alarm 6 times and then never again, so what the old object kept (its record, usage
 * lines not yet in D1, undispatched events, an open quota step) waited for someone to ask for the
 * subscription, which for one that has ended nothing ever does.
 */
describe("an object of its own whose shard refuses the hand-over", () => {
  it("keeps its alarm set through more failures than the platform retries, and hands over once the shard answers", async () => {
    const t = await tenantWithCatalog(1, 100);
    const id = await buyFor(t, "cpu", { period: "1 month" });
    await toObjectOfItsOwn(id, { alarmAt: Date.now() });
    const legacy = legacyObject(id);
    const shardTo = (namespace: Env["SUBSCRIPTION"]) =>
      runInDurableObject(legacy, (instance: SubscriptionObject) => {
        const own = instance as unknown as { env: Env };
        own.env = { ...own.env, SUBSCRIPTION: namespace };
      });
    await shardTo({
      idFromName: (name: string) => env.SUBSCRIPTION.idFromName(name),
      get: () => ({ adopt: () => Promise.reject(new Error("the shard is unreachable")) }),
    } as unknown as Env["SUBSCRIPTION"]);
    for (let failures = 1; failures <= 7; failures++) {
      // Each run is made due at once, as the time it waits passing would.
      await runInDurableObject(legacy, async (_i, state) => {
        const at = await state.storage.getAlarm();
        if (at !== null) await state.storage.setAlarm(Date.now());
      });
      expect(await runDurableObjectAlarm(legacy), `run ${failures}: set again by the one before`).toBe(true);
    }
    // Still kept where it was.
    const kept = await runInDurableObject(legacy, (_i, state) =>
      state.storage.sql.exec("SELECT id FROM record").toArray(),
    );
    expect(kept).toEqual([{ id: 1 }]);

    await shardTo(env.SUBSCRIPTION);
    await runInDurableObject(legacy, (_i, state) => state.storage.setAlarm(Date.now()));
    expect(await runDurableObjectAlarm(legacy)).toBe(true);
    const inShard = await runInDurableObject(subscriptionShard(env, id), (_i, state) =>
      state.storage.sql.exec("SELECT id FROM records WHERE id = ?", id).toArray(),
    );
    expect(inShard).toEqual([{ id }]);
    expect(await runInDurableObject(legacy, (_i, state) => state.storage.getAlarm())).toBeNull();
  });
});
