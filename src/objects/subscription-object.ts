import { DurableObject } from "cloudflare:workers";
import type { Order } from "../db/orders";
import { inReadModel } from "../db/subscriptions";
import { eachWithin } from "../domain/concurrency";
import { shardOf } from "../domain/ids";
import { logError } from "../domain/log";
import { backoff } from "../domain/retry";
import type { Scope } from "../domain/scope";
import type { RenewalIds, SubscriptionRecord } from "../domain/subscriptions";
import type { DeploymentPatch } from "../domain/webhooks";
import { adoptLegacy, type HandedOver, legacyState, storageTables } from "./legacy-subscription";
import { ProjectionPushes } from "./projection-pushes";
import { QuotaSteps } from "./quota-steps";
import { Subscription } from "./subscription";
import type { SubscriptionHost } from "./subscription-machine";
import { createSubscriptionTables } from "./subscription-store";

/** How many subscriptions a shard keeps in memory; past it, the idle ones used least recently are forgotten. */
const KEPT_IN_MEMORY = 1_000;

/**
 * When a subscription whose alarm failed is woken again: 5 s after a first failure, twice as long
 * after each failure in a row, at most 5 minutes (`backoff`).
 */
const ALARM_RETRY_MS = 5_000;
const ALARM_RETRY_MAX_MS = 300_000;

/** How many subscriptions' alarms run at once. */
const ALARMS_AT_ONCE = 8;

/**
 * The Durable Object that keeps subscriptions: a shard of every subscription whose id ends in its
 * name (`shardOf`), a customer's together (`subscriptionId`). Each subscription is still its own
 * state machine with its own rows, changed one change at a time (`Subscription`); the shard gives
 * them one storage, one alarm and one warm instance, so a purchase or a renewal starts no object
 * (bench/RESULTS.md: starting one was most of a purchase's cost).
 */
export class SubscriptionObject extends DurableObject<Env> {
  /** In order of last use, the least recent first. */
  private readonly kept = new Map<string, Subscription>();
  private readonly keptAtMost = KEPT_IN_MEMORY;
  private readonly host: SubscriptionHost;
  /** This shard's name, known from the first id it is asked about. */
  private name: string | null = null;
  /** Subscriptions whose alarm is running, and whether their wake was set again meanwhile. */
  private readonly alarming = new Map<string, boolean>();
  /** Take-overs from objects of their own under way, by subscription id. */
  private readonly takingOver = new Map<string, Promise<void>>();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    const sql = ctx.storage.sql;
    createSubscriptionTables(sql);
    QuotaSteps.createTable(sql);
    // One alarm per subscription, each set replacing the one before, as an object's own would;
    // `failures`: how many times in a row its alarm failed.
    sql.exec(
      "CREATE TABLE IF NOT EXISTS wakes (subscription TEXT PRIMARY KEY, at INTEGER NOT NULL, failures INTEGER NOT NULL DEFAULT 0)",
    );
    // Shards made before the column get it on their first start.
    if (
      !sql
        .exec<{ name: string }>("PRAGMA table_info(wakes)")
        .toArray()
        .some((c) => c.name === "failures")
    )
      sql.exec("ALTER TABLE wakes ADD COLUMN failures INTEGER NOT NULL DEFAULT 0");
    const shard = this;
    this.host = {
      get env() {
        return shard.env;
      },
      storage: ctx.storage,
      openSteps: new Set(QuotaSteps.open(sql)),
      projections: new ProjectionPushes(() => this.env),
      wake: (id, at) => this.wake(id, at),
      retry: (id) => this.retry(id),
      lookup: async (id) =>
        this.keeps(id) ? (await this.found(id)).get() : subscriptionObject(this.env, id).get(),
      queueChanged: async (id) =>
        this.keeps(id) ? this.queueChanged(id) : subscriptionObject(this.env, id).queueChanged(),
    };
  }

  create(id: string, record: SubscriptionRecord, order?: Order) {
    return this.subscription(id).create(record, order);
  }

  async get(id: string) {
    return (await this.found(id)).get();
  }

  async getJson(id: string) {
    return (await this.found(id)).getJson();
  }

  async view(id: string, scope: Scope, now: number) {
    return (await this.found(id)).view(scope, now);
  }

  /** Only an instance in memory keeps a verdict to drop. */
  queueChanged(id: string) {
    this.kept.get(id)?.queueChanged();
  }

  async setAutoRenew(id: string, value: boolean | undefined, expectedVersion?: number) {
    return (await this.found(id)).setAutoRenew(value, expectedVersion);
  }

  async changeAmount(id: string, amount: number, now: Date, expectedVersion?: number) {
    return (await this.found(id)).changeAmount(amount, now, expectedVersion);
  }

  async run(id: string, action: "start" | "stop", now: Date, ref?: string) {
    return (await this.found(id)).run(action, now, ref);
  }

  async closeMonth(id: string, boundary: Date) {
    return (await this.found(id)).closeMonth(boundary);
  }

  async cancel(id: string, now: Date, expectedVersion?: number) {
    return (await this.found(id)).cancel(now, expectedVersion);
  }

  async consume(id: string, quantity: number, now: Date, report: string) {
    return (await this.found(id)).consume(quantity, now, report);
  }

  async reserveNext(id: string, nextId: string) {
    return (await this.found(id)).reserveNext(nextId);
  }

  async releaseNext(id: string, nextId: string, failed?: boolean) {
    return (await this.found(id)).releaseNext(nextId, failed);
  }

  async setDeployment(id: string, patch: DeploymentPatch) {
    return (await this.found(id)).setDeployment(patch);
  }

  async fail(id: string, now: Date) {
    return (await this.found(id)).fail(now);
  }

  async planRenewal(id: string, ids: RenewalIds, at: Date) {
    return (await this.found(id)).planRenewal(ids, at);
  }

  async expire(id: string, now: Date, renewalError?: string | null) {
    return (await this.found(id)).expire(now, renewalError);
  }

  /**
   * Takes over subscription `id` from the object of its own it had before shards, if that still
   * keeps it (`legacy-subscription.ts`). Asked by that object's alarm.
   */
  async adopt(id: string): Promise<void> {
    await this.takeOver(id);
  }

  /**
   * On an object of its own from before shards: what it keeps, for its shard to take over. One
   * that keeps nothing (never was one, or handed over already) is emptied.
   */
  async handOver(): Promise<HandedOver | null> {
    const state = legacyState(this.ctx.storage.sql);
    if (!state) await this.empty();
    return state;
  }

  /** On an object of its own from before shards: its shard has it all, so it keeps nothing. */
  async handedOver(): Promise<void> {
    await this.empty();
  }

  /**
   * Runs the subscriptions' alarms that are due: the earliest at least (an alarm run early, as a
   * test does, runs those). Each is then over unless it was set again meanwhile, and one that
   * failed is tried again later on its own.
   */
  override async alarm(): Promise<void> {
    const sql = this.ctx.storage.sql;
    const tables = storageTables(sql);
    // An object of its own from before shards hands its subscription, and what was left to do, over.
    if (tables.has("record")) {
      const state = legacyState(sql);
      if (state) {
        const { id } = JSON.parse(state.body) as SubscriptionRecord;
        await subscriptionShard(this.env, id).adopt(id);
      } else await this.empty();
      return;
    }
    if (!tables.has("wakes")) return;
    const first = sql.exec<{ at: number | null }>("SELECT MIN(at) AS at FROM wakes").one().at;
    if (first === null) return;
    const due = sql
      .exec<{ subscription: string; at: number; failures: number }>(
        "SELECT subscription, at, failures FROM wakes WHERE at <= ?",
        Math.max(Date.now(), first),
      )
      .toArray();
    await eachWithin(due, ALARMS_AT_ONCE, async ({ subscription, at, failures }) => {
      // A wake set while this one runs (even for the same instant) is a new one, and stays.
      this.alarming.set(subscription, false);
      try {
        await this.subscription(subscription).alarm();
        if (!this.alarming.get(subscription))
          sql.exec("DELETE FROM wakes WHERE subscription = ? AND at = ?", subscription, at);
        this.alarming.delete(subscription);
      } catch (error) {
        this.alarming.delete(subscription);
        const retryInMs = backoff(ALARM_RETRY_MS, ALARM_RETRY_MAX_MS, failures);
        logError("subscription.alarm_failed", error, { subscription, failures: failures + 1, retryInMs });
        // A wake set again while it ran is a new one: it keeps its own instant and count.
        sql.exec(
          "UPDATE wakes SET at = ?, failures = failures + 1 WHERE subscription = ? AND at = ?",
          Date.now() + retryInMs,
          subscription,
          at,
        );
      }
    });
    await this.schedule();
  }

  /**
   * Subscription `id`, found: one the read model has but this shard has not was created before
   * shards, and is taken over from its object of its own first. Only a miss asks D1.
   */
  private async found(id: string): Promise<Subscription> {
    if (this.kept.has(id)) return this.subscription(id);
    if (!this.hasRecord(id) && (await inReadModel(this.env, id))) await this.takeOver(id);
    return this.subscription(id);
  }

  private hasRecord(id: string): boolean {
    return this.ctx.storage.sql.exec("SELECT 1 FROM records WHERE id = ?", id).toArray().length > 0;
  }

  /** Takes subscription `id` over from its old object: one take-over at a time per subscription. */
  private takeOver(id: string): Promise<void> {
    let running = this.takingOver.get(id);
    if (!running) {
      running = this.takeOverNow(id).finally(() => this.takingOver.delete(id));
      this.takingOver.set(id, running);
    }
    return running;
  }

  private async takeOverNow(id: string): Promise<void> {
    const legacy = legacyObject(this.env, id);
    const state = await legacy.handOver();
    if (!state) return;
    // Checked after the await: a record here (created meanwhile) is newer than the old object's.
    if (!this.hasRecord(id)) {
      this.ctx.storage.transactionSync(() => adoptLegacy(this.ctx.storage.sql, id, state));
      if (state.step !== null) this.host.openSteps.add(id);
      // An instance made before, which found no record, reads what was taken.
      this.kept.get(id)?.reload();
      // What the old object had left to do (a push, a quota step, a hold to release), the
      // subscription's alarm does here; one waiting for a place to expire sets its wake again.
      await this.wake(id, Date.now());
    }
    await legacy.handedOver();
  }

  /** Deletes everything this object stores, its alarm included. */
  private async empty(): Promise<void> {
    await this.ctx.storage.deleteAlarm();
    await this.ctx.storage.deleteAll();
  }

  private keeps(id: string): boolean {
    return this.name !== null && shardOf(id) === this.name;
  }

  /** The state machine of subscription `id`, kept in memory while it is used. */
  private subscription(id: string): Subscription {
    const kept = this.kept.get(id);
    if (kept) {
      this.kept.delete(id);
      this.kept.set(id, kept);
      return kept;
    }
    this.name ??= shardOf(id);
    const subscription = new Subscription(id, this.host);
    this.kept.set(id, subscription);
    if (this.kept.size > this.keptAtMost) {
      for (const [other, s] of this.kept) {
        if (this.kept.size <= this.keptAtMost) break;
        if (s.idle() && other !== id) this.kept.delete(other);
      }
    }
    return subscription;
  }

  /** Sets `id`'s wake to `at`, replacing the one it had; `failures`: in a row, before this one. */
  private async wake(id: string, at: number, failures = 0): Promise<void> {
    this.ctx.storage.sql.exec(
      "INSERT OR REPLACE INTO wakes (subscription, at, failures) VALUES (?, ?, ?)",
      id,
      at,
      failures,
    );
    if (this.alarming.has(id)) this.alarming.set(id, true);
    await this.schedule();
  }

  /** Wakes `id` again after a failure, as long after as the failures of its wake in a row say. */
  private async retry(id: string): Promise<void> {
    const failures =
      this.ctx.storage.sql
        .exec<{ failures: number }>("SELECT failures FROM wakes WHERE subscription = ?", id)
        .toArray()[0]?.failures ?? 0;
    await this.wake(id, Date.now() + backoff(ALARM_RETRY_MS, ALARM_RETRY_MAX_MS, failures), failures + 1);
  }

  /** The alarm, set for the earliest wake. */
  private async schedule(): Promise<void> {
    const next = this.ctx.storage.sql.exec<{ at: number | null }>("SELECT MIN(at) AS at FROM wakes").one().at;
    if (next === null) await this.ctx.storage.deleteAlarm();
    else if ((await this.ctx.storage.getAlarm()) !== next) await this.ctx.storage.setAlarm(next);
  }
}

/** A subscription's calls, as its shard answers them across RPC. */
export type SubscriptionCalls = {
  [K in Exclude<keyof Subscription, "idle" | "alarm" | "reload">]: Subscription[K] extends (
    ...args: infer A
  ) => infer R
    ? (...args: A) => Promise<Awaited<R>>
    : never;
};

/**
 * The ids of the shards, by namespace and name: deriving one hashes its name, and a shard is asked
 * for again and again (at most 65,536 names).
 */
const shardIds = new WeakMap<Env["SUBSCRIPTION"], Map<string, DurableObjectId>>();

/** The shard that keeps subscription `id`: its Durable Object. */
export function subscriptionShard(env: Env, id: string): DurableObjectStub<SubscriptionObject> {
  const namespace = env.SUBSCRIPTION;
  let ids = shardIds.get(namespace);
  if (!ids) {
    ids = new Map();
    shardIds.set(namespace, ids);
  }
  const name = shardOf(id);
  let shard = ids.get(name);
  if (!shard) {
    shard = namespace.idFromName(name);
    ids.set(name, shard);
  }
  return namespace.get(shard);
}

/** The object of its own that kept subscription `id` before shards. */
const legacyObject = (env: Env, id: string) => env.SUBSCRIPTION.get(env.SUBSCRIPTION.idFromName(id));

/** Subscription `id`'s calls, made on its shard. */
export function subscriptionObject(env: Env, id: string): SubscriptionCalls {
  const shard = subscriptionShard(env, id) as unknown as Record<string, (...args: unknown[]) => unknown>;
  return new Proxy({} as SubscriptionCalls, {
    // `then` stays undefined: the calls are not a promise.
    get: (_, method) =>
      typeof method === "string" && method !== "then"
        ? (...args: unknown[]) => shard[method]?.(id, ...args)
        : undefined,
  });
}
