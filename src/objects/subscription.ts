import { AppError, refused, toErrorWire } from "../domain/errors";
import { isRunning, runInstant, splitAt, start, stop } from "../domain/metering";
import type { Scope } from "../domain/scope";
import {
  amountChangeRefusal,
  deploymentRefusal,
  type RenewalIds,
  type RenewalPlan,
  renewalStep,
  runRefusal,
  type SubscriptionRecord,
  sameRecord,
  startDeployed,
} from "../domain/subscriptions";
import { closeMonthAt } from "../domain/usage";
import type { DeploymentPatch } from "../domain/webhooks";
import type { ProjectionPushes } from "./projection-pushes";
import { QuotaSteps } from "./quota-steps";
import {
  endsChainHold,
  type Lookup,
  placeAbandoned,
  placeExpiresAt,
  releaseReference,
} from "./subscription-chain";
import { type Expected, missing, type Outcome, stale } from "./subscription-outcome";
import { SubscriptionReads, type SubscriptionView } from "./subscription-reads";
import { SubscriptionStore } from "./subscription-store";
import { dispatchEvent } from "./webhook-events";

/** What a subscription needs of the shard that keeps it (`SubscriptionObject`). */
export interface SubscriptionHost {
  readonly env: Env;
  readonly storage: DurableObjectStorage;
  /** The shard's pushes to the D1 read model, written together. */
  readonly projections: ProjectionPushes;
  /** The subscriptions of the shard with a quota step open (`QuotaSteps`). */
  readonly openSteps: Set<string>;
  /** Runs subscription `id`'s `alarm` at `at` (ms), or soon after. */
  wake(id: string, at: number): Promise<void>;
  /** Reads a subscription, kept in this shard or another. */
  lookup: Lookup;
  /** Tells depletable `id`, in this shard or another, that its queue changed. */
  queueChanged(id: string): Promise<unknown>;
}

/**
 * One subscription's state machine. Every change runs one at a time (`exclusive`), including the
 * quota commission it needs, so concurrent changes apply in some order and quota always matches
 * the amount. The record is committed first; the D1 projection is pushed after, and the shard's
 * alarm retries the push until it lands (`SubscriptionStore`).
 */
export class Subscription {
  private tail: Promise<unknown> = Promise.resolve();
  /** How many changes are queued or running: a subscription at 0 may be dropped from memory. */
  private running = 0;
  /**
   * Whether a quota step an earlier instance left half-way may still be open: this subscription
   * serves nothing before it is finished (`settled`).
   */
  private leftover: boolean;
  private readonly reads: SubscriptionReads;
  private readonly steps: QuotaSteps;
  private readonly store: SubscriptionStore;

  constructor(
    private readonly id: string,
    private readonly host: SubscriptionHost,
  ) {
    const wakeIn = (ms: number) => host.wake(id, Date.now() + ms);
    this.steps = new QuotaSteps(host.storage, id, host.openSteps, wakeIn, (next) => this.commit(next));
    this.store = new SubscriptionStore(
      host.storage,
      id,
      wakeIn,
      (r, event) => dispatchEvent(this.env, r, event),
      (other) => host.queueChanged(other),
      (r) => host.projections.push(r),
    );
    this.reads = new SubscriptionReads(
      () => this.env,
      () => this.store.json(),
      () => this.store.projectedVersion(),
    );
    this.leftover = this.steps.pending() !== null;
  }

  /** What storage holds is read again: the shard wrote this subscription's rows itself. */
  reload(): void {
    this.store.forget();
    this.steps.forget();
    this.reads.recordChanged();
    this.leftover = this.steps.pending() !== null;
  }

  /**
   * Finishes a quota step an earlier instance left half-way, before anything is served: a read
   * while the ledger cannot say how the step ended fails, and the next one tries again.
   */
  private async settled(): Promise<void> {
    if (!this.leftover) return;
    await this.exclusive(async () => undefined);
    this.leftover = false;
  }

  private get env(): Env {
    return this.host.env;
  }

  /** Whether nothing is running or waiting to: the shard may forget this instance. */
  idle(): boolean {
    return this.running === 0;
  }

  /**
   * Creates the subscription; creating it again returns what exists, so a retried purchase is
   * harmless. A term of a chain takes the auto_renew its predecessor has once it exists: a change
   * of the chain's flag while it was bought reached the predecessor only (README, "Auto-renew").
   */
  async create(record: SubscriptionRecord): Promise<SubscriptionRecord> {
    return this.exclusive(async () => {
      const existing = this.store.load();
      if (existing) return existing;
      const previous = record.previousId === null ? null : await this.lookup(record.previousId);
      // One commit: a flag set on the predecessor after this read is carried here by that change
      // (`setAutoRenew` walks the chain), queued behind this one.
      return this.commit(
        previous && previous.autoRenew !== record.autoRenew
          ? { ...record, autoRenew: previous.autoRenew }
          : record,
      );
    });
  }

  async get(): Promise<SubscriptionRecord | null> {
    await this.settled();
    return this.store.load();
  }

  /** The record as stored, JSON text: a string crosses RPC as it is, a record field by field. */
  async getJson(): Promise<string | null> {
    await this.settled();
    return this.store.json();
  }

  /** A read of this subscription within `scope` (see `SubscriptionReads.view`). */
  async view(scope: Scope, now: number): Promise<SubscriptionView | null> {
    await this.settled();
    return this.reads.view(scope, now);
  }

  /**
   * Told by a depletable of the same customer and product that comes before this one in the
   * queue when it is created (after this one: its id was chosen first) or ends.
   */
  queueChanged(): void {
    this.reads.queueChanged();
  }

  /** Sets auto_renew, or toggles it. `expectedVersion`, here and below: see `change`. */
  async setAutoRenew(
    value: boolean | undefined,
    expectedVersion?: number,
  ): Promise<Outcome<SubscriptionRecord>> {
    return this.change((r) => ({ ...r, autoRenew: value ?? !r.autoRenew }), {
      version: expectedVersion,
      done: (r) => r.autoRenew === value,
    });
  }

  /** Changes the quantity: up holds the difference on the customer's quota, down releases it. */
  async changeAmount(
    amount: number,
    now: Date,
    expectedVersion?: number,
  ): Promise<Outcome<SubscriptionRecord>> {
    return this.change(
      async (r) => {
        const refusal = amountChangeRefusal(r);
        if (refusal) throw refused(refusal);
        const difference = amount - r.amount;
        if (difference === 0) return r;
        const runs = isRunning(r.runs) ? splitAt(r.runs, runInstant(r.runs, now), amount) : r.runs;
        const reference = `subscription:${r.id}:v${r.version}:amount:${amount}`;
        return this.steps.move(this.env, r, difference, reference, now, { ...r, amount, runs });
      },
      { version: expectedVersion, done: (r) => r.amount === amount },
    );
  }

  async run(action: "start" | "stop", now: Date): Promise<Outcome<SubscriptionRecord>> {
    return this.change((r) => {
      const refusal = runRefusal(r, action);
      if (refusal) throw refused(refusal);
      const t = runInstant(r.runs, now);
      const runs = action === "start" ? start(r.runs, t, r.amount) : stop(r.runs, t);
      return { ...r, runs };
    });
  }

  /**
   * The cron's month close: a cloud running since before `boundary` is billed up to it (its lines
   * written) and runs on. Again, or for a cloud not running then: nothing changes.
   */
  async closeMonth(boundary: Date): Promise<Outcome<SubscriptionRecord>> {
    return this.change((r) => {
      const runs = closeMonthAt(r.runs, boundary.getTime());
      return runs === r.runs ? r : { ...r, runs };
    });
  }

  /** Cancels: closes the running interval and releases the quota. Cancelling again changes nothing. */
  async cancel(now: Date, expectedVersion?: number): Promise<Outcome<SubscriptionRecord>> {
    return this.change(async (r) => (r.endedAt !== null ? r : this.ended(r, "cancelled", now, {})), {
      version: expectedVersion,
      done: (r) => r.endedAt !== null,
    });
  }

  /**
   * Consumes up to `quantity` of a depletable subscription for consumption report `report` and
   * answers what is left over for the next one; the same report again takes nothing more. At zero
   * the subscription is depleted: it ends and its quota is released.
   */
  async consume(
    quantity: number,
    now: Date,
    report: string,
  ): Promise<Outcome<{ record: SubscriptionRecord; leftover: number }>> {
    return this.exclusive(async () => {
      const r = this.store.load();
      if (!r) return missing();
      const taken = r.consumed?.find((c) => c.report === report)?.used;
      if (taken !== undefined) return { ok: true, value: { record: r, leftover: quantity - taken } };
      if (r.kind !== "depletable" || r.remaining === null || r.endedAt !== null) {
        return { ok: true, value: { record: r, leftover: quantity } };
      }
      const used = Math.min(r.remaining, quantity);
      const remaining = r.remaining - used;
      // A retry comes within minutes, not after this many other reports.
      const consumed = [...(r.consumed ?? []), { report, used }].slice(-32);
      const drained = { ...r, remaining, consumed };
      const next = remaining === 0 ? await this.ended(drained, "depleted", now, {}) : drained;
      return { ok: true, value: { record: this.commit(next), leftover: quantity - used } };
    });
  }

  /**
   * Claims the place after this subscription in its chain: the record as it stands with the place
   * reserved (whether its chain still holds its quota decides what the extension holds), or null
   * if another extension has it.
   */
  async reserveNext(nextId: string): Promise<Outcome<SubscriptionRecord | null>> {
    return this.exclusive(async () => {
      const found = this.store.load();
      if (!found) return missing();
      const r = await this.withStalePlaceFreed(found);
      if (r.nextId !== null) return { ok: true, value: r.nextId === nextId ? r : null };
      return { ok: true, value: this.commit({ ...r, nextId, nextReservedAt: new Date().toISOString() }) };
    });
  }

  /**
   * Gives the place back when the extension that claimed it could not be bought. An extension that
   * was created and then failed (`failed`) can never be bought again under its ids: a renewal
   * that had chosen them chooses new ones next time.
   */
  async releaseNext(nextId: string, failed = false): Promise<void> {
    await this.exclusive(async () => {
      const r = this.store.load();
      if (!r) return;
      const holds = r.nextId === nextId;
      const renewal = failed && r.renewal?.subscription === nextId ? null : r.renewal;
      if (!holds && renewal === r.renewal) return;
      // An ended term whose hold waited on that extension releases it now, if nothing else is live.
      await this.endHoldOf(this.commit({ ...r, nextId: holds ? null : r.nextId, renewal }));
    });
  }

  /**
   * Records what the vendor reports: its deployment status (along the allowed transitions),
   * where the customer reaches the application, and how. The first DEPLOYED starts the term that
   * waited for it, now (`startDeployed`).
   */
  async setDeployment(patch: DeploymentPatch): Promise<Outcome<SubscriptionRecord>> {
    return this.change((r) => {
      const refusal = deploymentRefusal(r, patch);
      if (refusal) throw refused(refusal);
      const status = patch.deploymentStatus ?? r.deploymentStatus;
      const started =
        r.deploymentStatus === "PENDING" && status === "DEPLOYED" ? startDeployed(r, new Date()) : r;
      return {
        ...started,
        deploymentStatus: status,
        syndicatedEndpoints: patch.syndicatedEndpoints ?? r.syndicatedEndpoints,
        endUserInstructions: patch.endUserInstructions ?? r.endUserInstructions,
      };
    });
  }

  /**
   * Ends a subscription whose purchase was undone. Its quota is not released here: the purchase's
   * commission is rejected instead, which gives it back.
   */
  async fail(now: Date): Promise<Outcome<SubscriptionRecord>> {
    return this.change((r) =>
      r.endedAt !== null ? r : { ...r, endedAt: now.toISOString(), endReason: "failed" as const },
    );
  }

  /**
   * A due renewal (`renewalStep`). To renew, the ids the renewal creates are chosen by the first
   * attempt and kept, so every later attempt (a second cron run, a redelivery) completes the same
   * renewal instead of buying another, and the place after this subscription is reserved for it
   * in the same commit (as `reserveNext` would): the answer's record shows it reserved.
   */
  async planRenewal(ids: RenewalIds, at: Date): Promise<RenewalPlan> {
    return this.exclusive(async () => {
      const found = this.store.load();
      if (!found) return { step: "skip" };
      const r = await this.withStalePlaceFreed(found);
      const successor = r.nextId === null ? null : await this.lookup(r.nextId);
      const step = renewalStep(r, at, successor !== null && successor.endedAt !== null);
      if (step !== "renew") return step === "expire" ? { step, record: r } : { step };
      const renewal = r.renewal ?? ids;
      const record =
        r.nextId === renewal.subscription
          ? r
          : this.commit({
              ...r,
              renewal,
              nextId: renewal.subscription,
              nextReservedAt: new Date().toISOString(),
            });
      return { step, record, ids: renewal, fresh: r.renewal === null };
    });
  }

  /** Ends a subscription whose term is over and that is not renewed: its quota is released. */
  async expire(now: Date, renewalError: string | null = null): Promise<Outcome<SubscriptionRecord>> {
    return this.change(async (r) => {
      if (r.endedAt !== null) return r;
      return this.ended(r, "expired", now, { renewalError });
    });
  }

  /**
   * The record, with the place after it freed if an extension reserved it longer than the recovery
   * bound ago and was never created (its request died first): otherwise nothing could extend or
   * renew the chain again. A renewal's place is left as it is: its own ids finish it.
   */
  private async withStalePlaceFreed(r: SubscriptionRecord): Promise<SubscriptionRecord> {
    if (!(await placeAbandoned(this.env, r, this.lookup))) return r;
    return this.commit({ ...r, nextId: null, nextReservedAt: null });
  }

  private readonly lookup: Lookup = (id) => this.host.lookup(id);

  /**
   * Finishes a quota step left half-way, releases the hold of an ended term whose extension never
   * came, and pushes what is left to push.
   */
  async alarm(): Promise<void> {
    await this.exclusive(async () => {
      const r = this.store.load();
      if (!r?.endedAt || r.holdReleased) return;
      await this.endHoldOf(await this.withStalePlaceFreed(r));
      // Still held for an extension on its way: looked at again when its place expires (the wake
      // `ended` set for that may have been replaced since, by a push's retry or a take-over).
      const now = this.store.load();
      if (now && !now.holdReleased) await this.wakeWhenPlaceExpires(now);
    });
  }

  /** Wakes this subscription once the place reserved after it counts as abandoned, if one is. */
  private async wakeWhenPlaceExpires(r: SubscriptionRecord): Promise<void> {
    const expires = r.nextId === null ? 0 : placeExpiresAt(this.env, r);
    if (expires > Date.now()) await this.host.wake(this.id, expires + 1000);
  }

  /** Releases the chain's hold with ended term `r` if nothing else keeps it (`endsChainHold`). */
  private async endHoldOf(r: SubscriptionRecord): Promise<void> {
    if (r.endedAt === null || !(await endsChainHold(this.env, r, new Date(), this.lookup))) return;
    const released = { ...r, holdReleased: true };
    this.commit(await this.steps.move(this.env, r, -r.amount, releaseReference(r), new Date(), released));
  }

  private async ended(
    r: SubscriptionRecord,
    reason: "cancelled" | "expired" | "depleted",
    now: Date,
    also: Partial<SubscriptionRecord>,
  ): Promise<SubscriptionRecord> {
    const runs = isRunning(r.runs) ? stop(r.runs, runInstant(r.runs, now)) : r.runs;
    const next = { ...r, ...also, runs, endedAt: now.toISOString(), endReason: reason };
    if (await endsChainHold(this.env, r, now, this.lookup))
      return this.steps.move(this.env, r, -r.amount, releaseReference(r), now, {
        ...next,
        holdReleased: true,
      });
    // The hold stays with the chain. An extension still on its way (its place reserved within the
    // bound) that never comes gives it back here, on the alarm set for when the place expires.
    await this.wakeWhenPlaceExpires(r);
    return next;
  }

  /**
   * Runs `apply` on the current record exclusively and commits its result as a new version. Under
   * If-Match (`expected`), check and write are one step: a record changed since answers 412 without
   * `apply`, or as done if the change is already in effect (a retry of it: RFC 9110 §13.1.1).
   */
  private async change(
    apply: (r: SubscriptionRecord) => SubscriptionRecord | Promise<SubscriptionRecord>,
    expected?: Expected,
  ): Promise<Outcome<SubscriptionRecord>> {
    return this.exclusive(async () => {
      const r = this.store.load();
      if (!r) return missing();
      if (expected?.version !== undefined && r.version !== expected.version) {
        return expected.done(r) ? { ok: true, value: r } : stale();
      }
      try {
        const next = await apply(r);
        return { ok: true, value: sameRecord(next, r) ? r : this.commit(next) };
      } catch (error) {
        if (error instanceof AppError) return { ok: false, error: toErrorWire(error) };
        throw error;
      }
    });
  }

  /**
   * Serializes every mutation, across awaits: the storage input gate alone would let a second
   * change in while the first waits on the quota ledger.
   */
  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    // The projection is pushed inside the section, so D1 receives versions in order and a
    // caller that lists right after a change sees it.
    const step = async () => {
      await this.steps.finishLeft(this.env);
      try {
        return await work();
      } catch (error) {
        // A change that failed half-way may have left its quota step open: it is finished now
        // if the ledger answers, else by the next change or the alarm.
        await this.steps.finishLeft(this.env).catch(() => undefined);
        throw error;
      } finally {
        await this.store.push(this.env);
      }
    };
    this.running += 1;
    const run = this.tail.then(step, step).finally(() => {
      this.running -= 1;
    });
    this.tail = run.catch(() => undefined);
    return run;
  }

  /**
   * Stores the next version and, for a syndicated product, the event describing it, in one
   * storage transaction: the event can never be lost, nor sent for a change that did not happen.
   */
  private commit(next: SubscriptionRecord): SubscriptionRecord {
    this.reads.recordChanged();
    try {
      return this.host.storage.transactionSync(() => {
        this.steps.end();
        return this.store.write(next);
      });
    } catch (error) {
      this.steps.forget();
      this.store.forget();
      throw error;
    }
  }
}
