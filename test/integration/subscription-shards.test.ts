import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { disarmFaults } from "../../src/domain/faults";
import { shardOf, subscriptionId } from "../../src/domain/ids";
import type { SubscriptionRecord } from "../../src/domain/subscriptions";
import { ProjectionPushes } from "../../src/objects/projection-pushes";
import {
  type SubscriptionObject,
  subscriptionObject,
  subscriptionShard,
} from "../../src/objects/subscription-object";
import { expectBooksBalance, purchaseDiedAt, recoverAll } from "../books";
import { call, expectOk, failingD1, tenantWithCatalog, usageOf } from "../helpers";
import { buyFor, legacyObject, toObjectOfItsOwn } from "../legacy";

describe("subscription shards", () => {
  it("keep a customer's subscriptions, and the terms of their chains, together", async () => {
    const t = await tenantWithCatalog(2);
    const bought = await expectOk(
      call("POST", "/v1/subscriptions/", {
        token: t.partnerKey,
        body: {
          objects: [
            { customer: t.customers[0], resource: "cpu", amount: 1, period: "1 month" },
            { customer: t.customers[0], resource: "mem", amount: 1, period: "1 month" },
            { customer: t.customers[1], resource: "cpu", amount: 1, period: "1 month" },
          ],
        },
      }),
      201,
    );
    const [a, b, other] = bought.objects.map((o: any) => o.id as string);
    expect(shardOf(a)).toBe(shardOf(b));
    expect(shardOf(other)).not.toBe(shardOf(a));
    const extension = await expectOk(
      call("POST", `/v1/subscriptions/${a}/action/?do=extend`, { token: t.partnerKey, body: {} }),
    );
    expect(shardOf(extension.id)).toBe(shardOf(a));
    await expectBooksBalance(t);
  });

  it("write the projections waiting together in one D1 batch, and one D1 refuses fails alone", async () => {
    const t = await tenantWithCatalog(1);
    const bought = await expectOk(
      call("POST", "/v1/subscriptions/", {
        token: t.partnerKey,
        body: { objects: [{ customer: t.customers[0], resource: "cpu", amount: 1, period: "1 month" }] },
      }),
      201,
    );
    const record = (await subscriptionObject(env, bought.objects[0].id).get()) as SubscriptionRecord;
    const copy = (changes: Partial<SubscriptionRecord>) => ({
      ...record,
      id: crypto.randomUUID(),
      ...changes,
    });
    let batches = 0;
    const counting = <T extends object>(db: T): T =>
      new Proxy(db, {
        get(target, key) {
          if (key === "batch") batches += 1;
          const value = Reflect.get(target, key);
          if (key === "withSession") {
            return (start: string) => counting((target as unknown as D1Database).withSession(start));
          }
          return typeof value === "function" ? value.bind(target) : value;
        },
      });
    const counted = { ...env, DB: counting(env.DB) };
    const pushes = new ProjectionPushes(() => counted);

    const good = [copy({}), copy({}), copy({}), copy({})];
    await Promise.all(good.map((r) => pushes.push(r)));
    // The first goes alone; the three that came while it was on its way go together.
    expect(batches).toBe(2);

    // NOT NULL start_time: D1 refuses that row, and the batch it came in is tried row by row.
    const refused = copy({ startTime: null as unknown as string });
    const after = [copy({}), refused, copy({}), copy({})];
    const outcomes = await Promise.allSettled(after.map((r) => pushes.push(r)));
    expect(outcomes.map((o) => o.status)).toEqual(["fulfilled", "rejected", "fulfilled", "fulfilled"]);
    const inD1 = async (id: string) =>
      (await env.DB.prepare("SELECT 1 FROM subscriptions WHERE id = ?").bind(id).first()) !== null;
    for (const r of [...good, ...after]) expect(await inD1(r.id)).toBe(r !== refused);
  });
});

describe("a purchase of one subscription", () => {
  afterEach(() => disarmFaults());

  const orderOf = (id: string) =>
    env.DB.prepare(
      "SELECT o.state, (SELECT count(*) FROM charges c WHERE c.order_id = o.id) AS lines FROM orders o WHERE o.id = ?",
    )
      .bind(id)
      .first<{ state: string; lines: number }>();

  it("has its order and charge line written in its projection's batch, before the request goes on", async () => {
    const t = await tenantWithCatalog(1);
    // The request dies right after the shard answered: it never wrote an order itself.
    const { ids } = await purchaseDiedAt(t, "purchase.created");
    const [order] = Object.values(ids.orders);
    expect(await orderOf(order as string)).toEqual({ state: "completed", lines: 1 });
    await recoverAll(t);
    expect(await usageOf(t, 0, "mem")).toMatchObject({ usage: 2, pending: 0 });
    await expectBooksBalance(t);
  });

  it("takes effect when the request's own D1 writes fail: its shard wrote the order", async () => {
    const t = await tenantWithCatalog(1);
    const bought = await expectOk(
      call("POST", "/v1/subscriptions/", {
        token: t.partnerKey,
        body: { objects: [{ customer: t.customers[0], resource: "cpu", amount: 2, period: "1 month" }] },
        env: { ...env, DB: failingD1(env.DB, "batch") },
      }),
      201,
    );
    const id = bought.objects[0].id as string;
    const record = (await subscriptionObject(env, id).get()) as SubscriptionRecord;
    expect(await orderOf(record.orderId)).toEqual({ state: "completed", lines: 1 });
    expect(await usageOf(t, 0, "cpu")).toMatchObject({ usage: 2, pending: 0 });
    await expectBooksBalance(t);
  });

  it("has its order written by the request when its shard's batch fails, and its projection by the alarm", async () => {
    const t = await tenantWithCatalog(1);
    const shard = subscriptionShard(env, subscriptionId(t.customers[0] as string));
    const swap = (make: (db: D1Database) => D1Database) =>
      runInDurableObject(shard, (instance: SubscriptionObject) => {
        const own = instance as unknown as { env: Env };
        own.env = { ...own.env, DB: make(own.env.DB) };
      });
    await swap((db) => failingD1(db, "batch"));
    const bought = await expectOk(
      call("POST", "/v1/subscriptions/", {
        token: t.partnerKey,
        body: { objects: [{ customer: t.customers[0], resource: "cpu", amount: 1, period: "1 month" }] },
      }),
      201,
    );
    const id = bought.objects[0].id as string;
    const record = (await subscriptionObject(env, id).get()) as SubscriptionRecord;
    expect(await orderOf(record.orderId)).toEqual({ state: "completed", lines: 1 });
    const inReadModel = async () =>
      (await env.DB.prepare("SELECT 1 FROM subscriptions WHERE id = ?").bind(id).first()) !== null;
    expect(await inReadModel()).toBe(false);
    await swap(() => env.DB);
    expect(await runDurableObjectAlarm(shard)).toBe(true);
    expect(await inReadModel()).toBe(true);
    expect(await usageOf(t, 0, "cpu")).toMatchObject({ usage: 1, pending: 0 });
    await expectBooksBalance(t);
  });
});

const legacyTables = (id: string) =>
  runInDurableObject(legacyObject(id), (_instance, state) =>
    state.storage.sql
      .exec<{ name: string }>(
        "SELECT name FROM sqlite_master WHERE name IN ('record', 'outbox', 'usage_outbox', 'quota_step')",
      )
      .toArray()
      .map((row) => row.name),
  );

describe("subscriptions kept by an object of their own, from before shards", () => {
  it("are taken over by their shard the first time they are asked for, whole, and change from there", async () => {
    const t = await tenantWithCatalog(1);
    const id = await buyFor(t, "cumulus");
    const before = await expectOk(call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey }));
    await toObjectOfItsOwn(id);

    const read = await expectOk(call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey }));
    expect(read).toEqual(before);
    expect(await legacyTables(id)).toEqual([]);

    const resized = await expectOk(
      call("PATCH", `/v1/subscriptions/${id}/`, { token: t.partnerKey, body: { amount: 3 } }),
    );
    expect(resized.amount).toBe(3);
    expect(await usageOf(t, 0, "cumulus")).toMatchObject({ usage: 3, pending: 0 });
    await expectBooksBalance(t);
  });

  it("hand over what was left to do when the old object's alarm fires: a usage line D1 never got lands once", async () => {
    const t = await tenantWithCatalog(1);
    const id = await buyFor(t, "cumulus");
    const object = subscriptionObject(env, id);
    const start = Date.now() - 3 * 3_600_000;
    expect((await object.run("start", new Date(start))).ok).toBe(true);
    // D1 is down for the shard: the stop's line stays in its storage, the read model behind.
    await runInDurableObject(subscriptionShard(env, id), (instance: SubscriptionObject) => {
      const own = instance as unknown as { env: Env };
      own.env = { ...own.env, DB: failingD1(own.env.DB, "prepare", "batch") };
    });
    expect((await object.run("stop", new Date(start + 3_600_000))).ok).toBe(true);
    await toObjectOfItsOwn(id);
    const legacy = legacyObject(id);
    await runInDurableObject(legacy, (_instance, state) => state.storage.setAlarm(Date.now() + 60_000));

    expect(await runDurableObjectAlarm(legacy)).toBe(true);
    expect(await legacyTables(id)).toEqual([]);
    // The shard was woken to do it: its alarm pushes the line and the stopped cloud.
    expect(await runDurableObjectAlarm(subscriptionShard(env, id))).toBe(true);
    const charges = await expectOk(call("GET", `/v1/charges?subscription=${id}`, { token: t.partnerKey }));
    expect(charges.objects.filter((l: any) => l.kind === "usage").map((l: any) => l.amount)).toEqual([
      "1.00",
    ]);
    const projected = await env.DB.prepare("SELECT running_since AS r FROM subscriptions WHERE id = ?")
      .bind(id)
      .first<{ r: number | null }>();
    expect(projected?.r).toBeNull();
    await expectBooksBalance(t);
  });
});
