import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { renewOrExpire } from "../../src/app/renewals";
import { shardOf } from "../../src/domain/ids";
import { placeExpiresAt } from "../../src/objects/subscription-chain";
import type { SubscriptionObject } from "../../src/objects/subscription-object";
import { subscriptionObject, subscriptionShard } from "../../src/objects/subscription-object";
import { call, expectOk, failingD1, tenantWithCatalog, usageOf } from "../helpers";
import { abandonPlace, buyFor, legacyObject, toObjectOfItsOwn } from "../legacy";

describe("a subscription taken over from its old object", () => {
  it("two concurrent first reads of a subscription kept by an old object both find it", async () => {
    const t = await tenantWithCatalog(1);
    const id = await buyFor(t, "cpu", { period: "1 month" });
    await toObjectOfItsOwn(id);
    const reads = await Promise.all([
      call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey }),
      call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey }),
      call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey }),
    ]);
    expect(reads.map((r) => r.status)).toEqual([200, 200, 200]);
  });

  it("a cancel racing the first read of an old object's subscription is not answered 404", async () => {
    const t = await tenantWithCatalog(1);
    const id = await buyFor(t, "cpu", { period: "1 month" });
    await toObjectOfItsOwn(id);
    const [read, cancel] = await Promise.all([
      call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey }),
      call("DELETE", `/v1/subscriptions/${id}/`, { token: t.partnerKey }),
    ]);
    expect([read.status, cancel.status]).toEqual([200, 200]);
  });

  it("an old object's subscription asked for before its projection landed is taken over by its alarm, and lands", async () => {
    const t = await tenantWithCatalog(1);
    const id = await buyFor(t, "cpu", { period: "1 month" });
    // The old object's creation push had failed: D1 does not have it yet, its alarm retries it.
    await toObjectOfItsOwn(id, { alarmAt: Date.now() + 5_000 });
    await env.DB.prepare("DELETE FROM subscriptions WHERE id = ?").bind(id).run();
    // Before shards, the object answered this read itself.
    await call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey });
    // The old object's alarm fires: the shard takes the subscription over, and is woken to push it.
    expect(await runDurableObjectAlarm(legacyObject(id))).toBe(true);
    expect(await runDurableObjectAlarm(subscriptionShard(env, id))).toBe(true);
    const inD1 = await env.DB.prepare("SELECT version FROM subscriptions WHERE id = ?").bind(id).first();
    const later = await call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey });
    const direct = await subscriptionObject(env, id).get();
    expect(direct?.id).toBe(id);
    expect(later.status).toBe(200);
    expect(inD1).not.toBeNull();
  });

  it("an ended term waiting on an extension's place keeps its hold-release alarm across the take-over", async () => {
    const t = await tenantWithCatalog(1);
    const id = await buyFor(t, "cpu", { period: "1 month" });
    const object = subscriptionObject(env, id);
    const placeholder = crypto.randomUUID();
    expect((await object.reserveNext(placeholder)).ok).toBe(true);
    expect((await object.cancel(new Date())).ok).toBe(true);
    const ended = await object.get();
    expect(ended?.endedAt).not.toBeNull();
    expect(ended?.holdReleased).toBeFalsy();
    expect(await usageOf(t, 0, "cpu")).toMatchObject({ usage: 1 });
    const releaseAt = placeExpiresAt(env, ended!) + 1000;

    // Control: in its shard, the subscription has a wake for when the place expires.
    const wakes = await runInDurableObject(subscriptionShard(env, id), (_i, state) =>
      state.storage.sql.exec<{ at: number }>("SELECT at FROM wakes WHERE subscription = ?", id).toArray(),
    );
    expect(wakes.map((w) => w.at)).toEqual([releaseAt]);

    // As before shards: an object of its own, its alarm set for when the place expires.
    await toObjectOfItsOwn(id, { alarmAt: releaseAt });
    await expectOk(call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey }));
    // The shard's alarm does what was left to do (nothing yet: the place has not expired).
    await runDurableObjectAlarm(subscriptionShard(env, id));

    const after = await runInDurableObject(subscriptionShard(env, id), async (_i, state) => ({
      wakes: state.storage.sql
        .exec<{ at: number }>("SELECT at FROM wakes WHERE subscription = ?", id)
        .toArray(),
      alarm: await state.storage.getAlarm(),
    }));
    const legacyAlarm = await runInDurableObject(legacyObject(id), (_i, state) => state.storage.getAlarm());
    // Something must still fire at (or after) the place's expiry to release the chain's hold.
    const pending = [...after.wakes.map((w) => w.at), legacyAlarm].filter((x): x is number => x !== null);
    // The place is then abandoned (its bound passed, the extension never came): rewritten as
    // time would make it, and the shard restarted.
    await abandonPlace(id);
    expect(pending.some((at) => at >= releaseAt - 1000)).toBe(true);
    expect(await runDurableObjectAlarm(subscriptionShard(env, id))).toBe(true);
    expect(await runDurableObjectAlarm(legacyObject(id))).toBe(false);
    expect(await usageOf(t, 0, "cpu")).toMatchObject({ usage: 0, pending: 0 });
    expect((await subscriptionObject(env, id).get())?.holdReleased).toBe(true);
  });

  it("the same term never taken over releases its hold once the place is abandoned", async () => {
    const t = await tenantWithCatalog(1);
    const id = await buyFor(t, "cpu", { period: "1 month" });
    const object = subscriptionObject(env, id);
    expect((await object.reserveNext(crypto.randomUUID())).ok).toBe(true);
    expect((await object.cancel(new Date())).ok).toBe(true);
    await abandonPlace(id);
    expect(await runDurableObjectAlarm(subscriptionShard(env, id))).toBe(true);
    expect(await usageOf(t, 0, "cpu")).toMatchObject({ usage: 0, pending: 0 });
  });

  it("one D1 failure on the first read of an old object's subscription does not hide it for good", async () => {
    const t = await tenantWithCatalog(1);
    const id = await buyFor(t, "cpu", { period: "1 month" });
    await toObjectOfItsOwn(id);
    let saved: Env | undefined;
    await runInDurableObject(subscriptionShard(env, id), (instance: SubscriptionObject) => {
      const own = instance as unknown as { env: Env };
      saved = own.env;
      own.env = { ...own.env, DB: failingD1(own.env.DB, "prepare", "batch") };
    });
    expect((await call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey })).status).toBe(500);
    await runInDurableObject(subscriptionShard(env, id), (instance: SubscriptionObject) => {
      (instance as unknown as { env: Env }).env = saved as Env;
    });
    const again = await call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey });
    expect(await renewOrExpire(env, id, new Date(Date.now() + 40 * 86_400_000))).toBe("expired");
    const cancel = await call("DELETE", `/v1/subscriptions/${id}/`, { token: t.partnerKey });
    expect(again.status).toBe(200);
    expect(cancel.status).toBe(200);
  });

  it("an old object keeps nothing once handed over", async () => {
    const t = await tenantWithCatalog(1);
    const id = await buyFor(t, "cpu", { period: "1 month" });
    await toObjectOfItsOwn(id);
    await expectOk(call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey }));
    const legacyTables = await runInDurableObject(legacyObject(id), (_i, state) =>
      state.storage.sql
        .exec<{ name: string }>(
          "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_%' ESCAPE '\\'",
        )
        .toArray()
        .map((r) => r.name),
    );
    expect(legacyTables).toEqual([]);
  });

  it("a push that fails while a cancelled term waits on its place does not lose its hold release", async () => {
    const t = await tenantWithCatalog(1);
    const id = await buyFor(t, "cpu", { period: "1 month" });
    const object = subscriptionObject(env, id);
    expect((await object.reserveNext(crypto.randomUUID())).ok).toBe(true);
    let saved: Env | undefined;
    await runInDurableObject(subscriptionShard(env, id), (instance: SubscriptionObject) => {
      const own = instance as unknown as { env: Env };
      saved = own.env;
      own.env = { ...own.env, DB: failingD1(own.env.DB, "batch") };
    });
    expect((await object.cancel(new Date())).ok).toBe(true);
    await runInDurableObject(subscriptionShard(env, id), (instance: SubscriptionObject) => {
      (instance as unknown as { env: Env }).env = saved as Env;
    });
    // The push retry's wake fires (and lands the push); the place has not expired yet.
    expect(await runDurableObjectAlarm(subscriptionShard(env, id))).toBe(true);
    await abandonPlace(id);
    expect(await runDurableObjectAlarm(subscriptionShard(env, id))).toBe(true);
    expect((await usageOf(t, 0, "cpu")).usage).toBe(0);
  });

  it("is not hidden by a depletable's queue told of a change before the take-over (no instance is made for that)", async () => {
    const t = await tenantWithCatalog(1);
    const id = await buyFor(t, "cpu", { period: "1 month" });
    await toObjectOfItsOwn(id);
    // The shard is told the queue of `id` changed (SubscriptionStore.push -> host.queueChanged for a
    // younger depletable of the same customer and product, same shard): this.subscription(id).
    // The shard has served something already (its name is known), as it has when a depletable of
    // the same customer was just bought in it.
    await subscriptionObject(env, crypto.randomUUID().slice(0, -4) + shardOf(id)).get();
    await runInDurableObject(subscriptionShard(env, id), async (instance: SubscriptionObject) => {
      const host = (instance as unknown as { host: { queueChanged(id: string): Promise<unknown> } }).host;
      await host.queueChanged(id);
    });
    const direct = await subscriptionObject(env, id).get();
    const cancel = await call("DELETE", `/v1/subscriptions/${id}/`, { token: t.partnerKey });
    const read = await call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey });
    expect({ direct: direct?.id ?? null, cancel: cancel.status, read: read.status }).toEqual({
      direct: id,
      cancel: 200,
      read: 200,
    });
  });
});
