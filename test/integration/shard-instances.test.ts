import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { shardOf } from "../../src/domain/ids";
import type { SubscriptionRecord } from "../../src/domain/subscriptions";
import {
  type SubscriptionObject,
  subscriptionObject,
  subscriptionShard,
} from "../../src/objects/subscription-object";
import { call, expectOk, tenantWithCatalog, usageOf } from "../helpers";

describe("a subscription in memory", () => {
  it("is one instance: a lookup whose D1 answer comes after the subscription was created leaves the instance its changes run on", async () => {
    const t = await tenantWithCatalog(1);
    const bought = await expectOk(
      call("POST", "/v1/subscriptions/", {
        token: t.partnerKey,
        body: { objects: [{ customer: t.customers[0], resource: "cumulus", amount: 1 }] },
      }),
      201,
    );
    const c = bought.objects[0].id as string;
    const rec = (await subscriptionObject(env, c).get()) as SubscriptionRecord;
    // A subscription of the same shard, not created yet (as an extension whose place was just reserved).
    const x = crypto.randomUUID().slice(0, -4) + shardOf(c);

    // D1 answers the shard's "is it in the read model?" late (a slow read).
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    // The ledger answers the first quota move late (a slow RPC).
    let releaseLedger!: () => void;
    const ledgerGate = new Promise<void>((r) => {
      releaseLedger = r;
    });
    let issued = 0;
    await runInDurableObject(subscriptionShard(env, c), (instance: SubscriptionObject) => {
      const own = instance as unknown as { env: Env };
      const db = own.env.DB;
      const ledgers = own.env.QUOTA_LEDGER;
      const slowLedgers = new Proxy(ledgers, {
        get(target, key) {
          if (key === "get")
            return (id: DurableObjectId) => {
              const stub = target.get(id);
              return new Proxy(stub, {
                get(s, k) {
                  if (k === "issue")
                    return async (...args: unknown[]) => {
                      const answer = await (s as any).issue(...args);
                      if (issued++ === 0) await ledgerGate;
                      return answer;
                    };
                  return (s as any)[k];
                },
              });
            };
          const value = Reflect.get(target, key);
          return typeof value === "function" ? value.bind(target) : value;
        },
      });
      own.env = {
        ...own.env,
        QUOTA_LEDGER: slowLedgers,
        DB: new Proxy(db, {
          get(target, key) {
            if (key === "prepare")
              return (sql: string) => {
                const statement = target.prepare(sql);
                if (!sql.startsWith("SELECT 1 FROM subscriptions WHERE id")) return statement;
                return {
                  bind: (...args: unknown[]) => ({
                    first: async () => {
                      await gate;
                      return statement.bind(...args).first();
                    },
                  }),
                };
              };
            const value = Reflect.get(target, key);
            return typeof value === "function" ? value.bind(target) : value;
          },
        }),
      };
    });

    const lookup = subscriptionObject(env, x).get(); // a miss: waits on D1
    await new Promise((r) => setTimeout(r, 50));
    const created = await subscriptionObject(env, x).create({
      ...rec,
      id: x,
      rootId: x,
      version: 0,
      runs: [],
    });
    expect(created.record.id).toBe(x);
    // A change starts on the instance that created it (its quota move on its way to the ledger)...
    const grow = subscriptionObject(env, x).changeAmount(3, new Date());
    // ...as D1's late answer arrives: "it is in the read model" -> take-over path, instance dropped.
    await new Promise((r) => setTimeout(r, 100));
    release();
    await lookup;
    // Another change reaches the instance made since.
    // It waits for the change running on the same instance (one change at a time).
    const cancelling = subscriptionObject(env, x).cancel(new Date());
    releaseLedger();
    const grown = await grow;
    const cancel = await cancelling;
    const cachedView = (await subscriptionObject(env, x).get()) as SubscriptionRecord;
    const stored = await runInDurableObject(subscriptionShard(env, c), (_i, state) =>
      JSON.parse(
        state.storage.sql.exec<{ body: string }>("SELECT body FROM records WHERE id = ?", x).one().body,
      ),
    );
    const final = stored as SubscriptionRecord;
    // The changes ran one after the other on one instance: the cancel came last, and what the
    // instance answers is what storage holds.
    expect(grown.ok && cancel.ok).toBe(true);
    expect(final.endedAt).not.toBeNull();
    expect(final.amount).toBe(3);
    expect(cachedView).toEqual(final);
    const usage = await usageOf(t, 0, "cumulus");
    // c holds 1; x's own purchase hold (1) was never taken (its record was copied): so the quota
    // held is what x's record says it holds, if live.
    expect(usage.usage).toBe(final.endedAt === null ? final.amount : 0);
  });
});

describe("a shard's subscriptions in memory", () => {
  it("past its bound, forget the idle ones used least recently, and read them again from storage when asked", async () => {
    const t = await tenantWithCatalog(1);
    const bought = await expectOk(
      call("POST", "/v1/subscriptions/", {
        token: t.partnerKey,
        body: {
          objects: ["cpu", "mem", "cumulus"].map((resource) => ({
            customer: t.customers[0],
            resource,
            amount: 1,
            period: resource === "cumulus" ? undefined : "1 month",
          })),
        },
      }),
      201,
    );
    const [a, b, c] = bought.objects.map((o: { id: string }) => o.id) as [string, string, string];
    const shard = subscriptionShard(env, a);
    type Kept = { kept: Map<string, unknown>; keptAtMost: number };
    const inMemory = () =>
      runInDurableObject(shard, (instance: SubscriptionObject) => [
        ...(instance as unknown as Kept).kept.keys(),
      ]);
    await runInDurableObject(shard, (instance: SubscriptionObject) => {
      const own = instance as unknown as Kept;
      own.kept.clear();
      own.keptAtMost = 2;
    });
    const read = async (id: string) =>
      (await expectOk(call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey }))).id;
    expect(await read(a)).toBe(a);
    expect(await read(b)).toBe(b);
    // `a` used again: `b` is now the least recent, and the one forgotten for `c`.
    expect(await read(a)).toBe(a);
    expect(await read(c)).toBe(c);
    expect(await inMemory()).toEqual([a, c]);
    expect(await read(b)).toBe(b);
    expect(await inMemory()).toEqual([c, b]);
    expect(await usageOf(t, 0, "cpu")).toMatchObject({ usage: 1, pending: 0 });
  });
});
