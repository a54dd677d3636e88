import { DurableObject } from "cloudflare:workers";
import type { Order } from "../db/orders";
import { inReadModel, projectedVersions } from "../db/subscriptions";
import { eachWithin } from "../domain/concurrency";
import { shardOf } from "../domain/ids";
import { logError } from "../domain/log";
import type { Scope } from "../domain/scope";
import type { RenewalIds, SubscriptionRecord } from "../domain/subscriptions";
import type { DeploymentPatch } from "../domain/webhooks";
import type { WorkRef } from "../domain/work-refs";
import { adoptLegacy, type HandedOver, legacyState, storageTables } from "./legacy-subscription";
import { idOf } from "./object-ids";
import { ProjectionPushes } from "./projection-pushes";
import { QuotaSteps } from "./quota-steps";
import { ReportDraws } from "./report-draws";
import { ShardAlarm } from "./shard-alarm";
import { Subscription } from "./subscription";
import type { SubscriptionHost } from "./subscription-machine";
import { createSubscriptionTables, hasUndispatchedEvent } from "./subscription-store";
import type { Commit } from "./unpushed-changes";

/** How many subscriptions a shard keeps in memory; past it, the idle ones used least recently are forgotten. */
const KEPT_IN_MEMORY = 1_000;

/** How long after a failed hand-over an object of its own from before shards tries again. */
const HANDOVER_RETRY_MS = 60_000;

/** How many subscriptions a push check pushes at once. */
const PUSHES_AT_ONCE = 8;

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
  /** Take-overs from objects of their own under way, by subscription id. */
  private readonly takingOver = new Map<string, Promise<void>>();
  private readonly alarms: ShardAlarm;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    const sql = ctx.storage.sql;
    createSubscriptionTables(sql);
    QuotaSteps.createTable(sql);
    const alarms = new ShardAlarm(ctx.storage);
    this.alarms = alarms;
    const shard = this;
    this.host = {
      get env() {
        return shard.env;
      },
      storage: ctx.storage,
      openSteps: new Set(QuotaSteps.open(sql)),
      projections: new ProjectionPushes(() => this.env),
      draws: new ReportDraws(sql),
      wake: (id, at) => alarms.wake(id, at),
      retry: (id) => alarms.retry(id),
      unpushed: alarms.unpushed,
      checkPushOf: (at) => alarms.checkPushOf(at),
      // A renewal's ids are chosen beside its term's (`subscriptionIdBeside`): always this shard's.
      giveUp: (id, at) => this.subscription(id).giveUpUnlessCreated(at),
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

  async setAutoRenew(
    id: string,
    value: boolean | undefined,
    expectedVersion?: number,
    work?: WorkRef,
    toggle?: string,
  ) {
    return (await this.found(id)).setAutoRenew(value, expectedVersion, work, toggle);
  }

  async changeAmount(
    id: string,
    amount: number,
    now: Date,
    expectedVersion?: number,
    work?: WorkRef,
    flag?: { autoRenew: boolean; work: WorkRef },
  ) {
    return (await this.found(id)).changeAmount(amount, now, expectedVersion, work, flag);
  }

  async run(id: string, action: "start" | "stop", now: Date, work?: WorkRef) {
    return (await this.found(id)).run(action, now, work);
  }

  async giveUpWork(id: string, ref: string) {
    return (await this.found(id)).giveUpWork(ref);
  }

  async closeMonth(id: string, boundary: Date) {
    return (await this.found(id)).closeMonth(boundary);
  }

  async cancel(id: string, now: Date, expectedVersion?: number, work?: WorkRef) {
    return (await this.found(id)).cancel(now, expectedVersion, work);
  }

  async consume(id: string, quantity: number, now: Date, report: string, passOver = false) {
    return (await this.found(id)).consume(quantity, now, report, passOver);
  }

  async reserveNext(id: string, nextId: string) {
    return (await this.found(id)).reserveNext(nextId);
  }

  async releaseNext(id: string, nextId: string, failed?: boolean, unbought?: boolean) {
    return (await this.found(id)).releaseNext(nextId, failed, unbought);
  }

  async setDeployment(id: string, patch: DeploymentPatch, carried?: boolean) {
    return (await this.found(id)).setDeployment(patch, carried);
  }

  async fail(id: string, now: Date) {
    return (await this.found(id)).fail(now);
  }

  async planRenewal(id: string, ids: RenewalIds, at: Date) {
    return (await this.found(id)).planRenewal(ids, at);
  }

  async expire(id: string, now: Date, renewalError?: string | null, planned?: boolean) {
    return (await this.found(id)).expire(now, renewalError, planned);
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

  /** The shard's alarm (`ShardAlarm.run`); an object of its own from before shards hands over instead. */
  override async alarm(): Promise<void> {
    const sql = this.ctx.storage.sql;
    if (storageTables(sql).has("record")) {
      const state = legacyState(sql);
      if (state) {
        const { id } = JSON.parse(state.body) as SubscriptionRecord;
        // Caught, and tried again by this alarm: thrown, the platform retries it a few times and
        // then never again, and what it keeps would wait for someone to ask for the subscription.
        await subscriptionShard(this.env, id)
          .adopt(id)
          .catch(async (error: unknown) => {
            logError("subscription.handover_failed", error, {
              subscription: id,
              retryInMs: HANDOVER_RETRY_MS,
            });
            await this.ctx.storage.setAlarm(Date.now() + HANDOVER_RETRY_MS);
          });
      } else await this.empty();
      return;
    }
    await this.alarms.run({
      alarm: (id) => this.subscription(id).alarm(),
      pushLeft: (commits) => this.pushLeft(commits),
    });
  }

  /**
   * The push checks that came due (`ShardAlarm`). A subscription in memory that pushed the version
   * has nothing left. For the others, the read model says whether the version landed (with its
   * usage lines, pushed before it) and the outbox whether an event did not; what did not is
   * pushed now. Answers the subscriptions whose commit landed.
   */
  private async pushLeft(commits: readonly Commit[]): Promise<Set<string>> {
    const landed = new Set<string>();
    const unknown = commits.filter(({ subscription, version }) => {
      if (!this.kept.get(subscription)?.pushedThrough(version)) return true;
      landed.add(subscription);
      return false;
    });
    const projected = await projectedVersions(
      this.env,
      unknown.map((c) => c.subscription),
    );
    const sql = this.ctx.storage.sql;
    await eachWithin(unknown, PUSHES_AT_ONCE, async ({ subscription, version }) => {
      if ((projected.get(subscription) ?? 0) >= version && !hasUndispatchedEvent(sql, subscription)) {
        landed.add(subscription);
        return;
      }
      try {
        if (await this.subscription(subscription).pushLeft()) landed.add(subscription);
      } catch (error) {
        logError("subscription.push_check_failed", error, { subscription, version });
      }
    });
    return landed;
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
      await this.alarms.wake(id, Date.now());
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
}

/** A subscription's calls, as its shard answers them across RPC. */
export type SubscriptionCalls = {
  [K in Exclude<
    keyof Subscription,
    "idle" | "alarm" | "reload" | "pushLeft" | "pushedThrough" | "giveUpUnlessCreated"
  >]: Subscription[K] extends (...args: infer A) => infer R ? (...args: A) => Promise<Awaited<R>> : never;
};

/** The shard that keeps subscription `id`: its Durable Object. */
export function subscriptionShard(env: Env, id: string): DurableObjectStub<SubscriptionObject> {
  const namespace = env.SUBSCRIPTION;
  return namespace.get(idOf(namespace, shardOf(id)));
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
