import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { placeExpiresAt } from "../../src/objects/subscription-chain";
import type { SubscriptionObject } from "../../src/objects/subscription-object";
import { subscriptionObject, subscriptionShard } from "../../src/objects/subscription-object";
import { call, expectOk, failingD1, shardAlarmOf, tenantWithCatalog, usageOf } from "../helpers";
import { buyFor } from "../legacy";

describe("a shard's alarm", () => {
  it("two subscriptions of a shard waiting on their places both release their holds, each on its wake", async () => {
    const t = await tenantWithCatalog(1);
    const bought = await expectOk(
      call("POST", "/v1/subscriptions/", {
        token: t.partnerKey,
        body: {
          objects: [
            { customer: t.customers[0], resource: "cpu", amount: 1, period: "1 month" },
            { customer: t.customers[0], resource: "cpu", amount: 2, period: "1 month" },
          ],
        },
      }),
      201,
    );
    const [a, b] = bought.objects.map((o: any) => o.id as string);
    const shard = subscriptionShard(env, a);
    for (const [id, ago] of [
      [a, 300_000],
      [b, 0],
    ] as const) {
      expect((await subscriptionObject(env, id).reserveNext(crypto.randomUUID())).ok).toBe(true);
      await runInDurableObject(shard, (_i, state) => {
        const row = state.storage.sql
          .exec<{ body: string }>("SELECT body FROM records WHERE id = ?", id)
          .one();
        const body = { ...JSON.parse(row.body), nextReservedAt: new Date(Date.now() - ago).toISOString() };
        state.storage.sql.exec("UPDATE records SET body = ? WHERE id = ?", JSON.stringify(body), id);
      });
      await evictDurableObject(shard);
      expect((await subscriptionObject(env, id).cancel(new Date())).ok).toBe(true);
    }
    const wakes = await runInDurableObject(shard, async (_i, state) => ({
      wakes: state.storage.sql.exec("SELECT subscription, at FROM wakes ORDER BY at").toArray(),
      alarm: await state.storage.getAlarm(),
    }));
    expect(wakes.wakes).toHaveLength(2);
    // Time passes: both places are abandoned.
    await runInDurableObject(shard, (_i, state) => {
      for (const id of [a, b]) {
        const row = state.storage.sql
          .exec<{ body: string }>("SELECT body FROM records WHERE id = ?", id)
          .one();
        const body = {
          ...JSON.parse(row.body),
          nextReservedAt: new Date(Date.now() - 86_400_000).toISOString(),
        };
        state.storage.sql.exec("UPDATE records SET body = ? WHERE id = ?", JSON.stringify(body), id);
      }
    });
    await evictDurableObject(shard);
    expect(await runDurableObjectAlarm(shard)).toBe(true);
    expect(await runDurableObjectAlarm(shard)).toBe(true);
    // (The first hold release's own 30 s step wake came next; the second's comes after it.)
    let runs = 0;
    while ((await runDurableObjectAlarm(shard)) && runs < 5) runs++;
    expect(await usageOf(t, 0, "cpu")).toMatchObject({ usage: 0, pending: 0 });
  });

  it("keeps a wake set again for the same instant while its alarm ran (run early, as here)", async () => {
    const t = await tenantWithCatalog(1);
    const id = await buyFor(t, "cpu", { period: "1 month" });
    const object = subscriptionObject(env, id);
    expect((await object.reserveNext(crypto.randomUUID())).ok).toBe(true);
    expect((await object.cancel(new Date())).ok).toBe(true);
    const ended = await object.get();
    const releaseAt = placeExpiresAt(env, ended!) + 1000;
    expect((await shardAlarmOf(id)).wakes).toEqual([releaseAt]);
    expect(await runDurableObjectAlarm(subscriptionShard(env, id))).toBe(true);
    // The alarm is set for the wake, or before it for the push check of the cancel.
    const { wakes, check, alarm } = await shardAlarmOf(id);
    expect(wakes).toEqual([releaseAt]);
    expect(check).not.toBeNull();
    expect(alarm).toBe(Math.min(releaseAt, check as number));
  });

  it("tries a wake that keeps failing again later each time, up to 5 minutes, and from the start once it succeeds", async () => {
    const t = await tenantWithCatalog(1);
    const id = await buyFor(t, "cpu", { period: "1 month" });
    const shard = subscriptionShard(env, id);
    const setDb = (down: boolean) =>
      runInDurableObject(shard, (instance: SubscriptionObject) => {
        const own = instance as unknown as { env: Env };
        own.env = { ...own.env, DB: down ? failingD1(env.DB, "prepare", "batch") : env.DB };
      });
    const wake = () =>
      runInDurableObject(shard, (_i, state) =>
        state.storage.sql
          .exec<{ at: number; failures: number }>("SELECT at, failures FROM wakes WHERE subscription = ?", id)
          .toArray(),
      );
    // D1 is down: the change is committed, its push fails, and the alarm is to push it.
    await setDb(true);
    const before = Date.now();
    expect((await subscriptionObject(env, id).setAutoRenew(true)).ok).toBe(true);
    const [first] = await wake();
    expect(first?.failures).toBe(1);
    const waits = [Math.round(((first?.at ?? 0) - before) / 1000)];
    for (let i = 2; i <= 8; i++) {
      const before = Date.now();
      expect(await runDurableObjectAlarm(shard)).toBe(true);
      const [row] = await wake();
      expect(row?.failures).toBe(i);
      waits.push(Math.round(((row?.at ?? 0) - before) / 1000));
    }
    // Seconds until each retry, within a second of 5 doubled each time, at most 300.
    for (const [i, expected] of [5, 10, 20, 40, 80, 160, 300, 300].entries()) {
      expect(Math.abs((waits[i] ?? 0) - expected), `retry ${i + 1}: ${waits.join(", ")}`).toBeLessThanOrEqual(
        1,
      );
    }
    await setDb(false);
    expect(await runDurableObjectAlarm(shard)).toBe(true);
    expect(await wake()).toEqual([]);
    const projected = await env.DB.prepare("SELECT auto_renew FROM subscriptions WHERE id = ?")
      .bind(id)
      .first<{ auto_renew: number }>();
    expect(projected?.auto_renew).toBe(1);
  });

  it("a shard stored before wakes counted failures gets the column when it starts, its wakes kept", async () => {
    const t = await tenantWithCatalog(1);
    const id = await buyFor(t, "cpu", { period: "1 month" });
    const shard = subscriptionShard(env, id);
    await runInDurableObject(shard, (_i, state) => {
      const sql = state.storage.sql;
      sql.exec("DROP TABLE wakes");
      sql.exec("CREATE TABLE wakes (subscription TEXT PRIMARY KEY, at INTEGER NOT NULL)");
      sql.exec("INSERT INTO wakes (subscription, at) VALUES (?, ?)", id, 42);
    });
    await evictDurableObject(shard);
    const rows = await runInDurableObject(shard, (_i, state) =>
      state.storage.sql.exec("SELECT subscription, at, failures FROM wakes").toArray(),
    );
    expect(rows).toEqual([{ subscription: id, at: 42, failures: 0 }]);
  });
});
