import { endedFor } from "../domain/endings";
import { AppError, toErrorWire } from "../domain/errors";
import { fault } from "../domain/faults";
import type { Scope } from "../domain/scope";
import { type SubscriptionRecord, sameRecord } from "../domain/subscriptions";
import type { ProjectionPushes } from "./projection-pushes";
import { QuotaSteps } from "./quota-steps";
import type { ReportDraws } from "./report-draws";
import { endsChainHold, type Lookup, placeExpiresAt, releaseReference } from "./subscription-chain";
import { type Expected, missing, type Outcome, stale } from "./subscription-outcome";
import { SubscriptionReads, type SubscriptionView } from "./subscription-reads";
import { SubscriptionStore } from "./subscription-store";
import type { UnpushedChanges } from "./unpushed-changes";
import { dispatchEvent } from "./webhook-events";

/** What a subscription needs of the shard that keeps it (`SubscriptionObject`). */
export interface SubscriptionHost {
  readonly env: Env;
  readonly storage: DurableObjectStorage;
  /** The shard's pushes to the D1 read model, written together. */
  readonly projections: ProjectionPushes;
  /** What each consumption report took from each depletable of the shard. */
  readonly draws: ReportDraws;
  /** The subscriptions of the shard with a quota step open (`QuotaSteps`). */
  readonly openSteps: Set<string>;
  /** Runs subscription `id`'s `alarm` at `at` (ms), or soon after. */
  wake(id: string, at: number): Promise<void>;
  /**
   * Runs subscription `id`'s `alarm` again after a failure: soon after a first one, later after
   * each failure in a row (`backoff`).
   */
  retry(id: string): Promise<void>;
  /** Reads a subscription, kept in this shard or another. */
  lookup: Lookup;
  /** Tells depletable `id`, in this shard or another, that its queue changed. */
  queueChanged(id: string): Promise<unknown>;
  /**
   * Gives subscription `id` of this shard up if it is not created yet (its `create` then makes it
   * failed): whether it was.
   */
  giveUp(id: string, at: Date): Promise<boolean>;
  /** The commits that may not be pushed yet: each is noted in its own transaction. */
  readonly unpushed: UnpushedChanges;
  /** Has the shard's alarm check, once due, that what was committed at `at` was pushed. */
  checkPushOf(at: number): void;
}

/**
 * What every subscription's state machine is built on: its rows in the shard (`SubscriptionStore`,
 * `QuotaSteps`), its reads, and its changes, run one at a time (`exclusive`) and committed as new
 * versions (`commit`), and how a term ends and gives its chain's hold back (`ended`, `endHoldOf`).
 * The changes themselves are `Subscription`'s.
 */
export abstract class SubscriptionMachine {
  private tail: Promise<unknown> = Promise.resolve();
  /** How many changes are queued or running: a subscription at 0 may be dropped from memory. */
  private running = 0;
  /**
   * Whether a quota step an earlier instance left half-way may still be open: this subscription
   * serves nothing before it is finished (`settled`).
   */
  private leftover: boolean;
  private readonly reads: SubscriptionReads;
  protected readonly steps: QuotaSteps;
  protected readonly store: SubscriptionStore;

  constructor(
    protected readonly id: string,
    protected readonly host: SubscriptionHost,
  ) {
    const wakeIn = (ms: number) => host.wake(id, Date.now() + ms);
    this.steps = new QuotaSteps(host.storage, id, host.openSteps, wakeIn, (next) => this.commit(next));
    this.store = new SubscriptionStore(
      host.storage,
      id,
      () => host.retry(id),
      () => host.wake(id, Date.now()),
      (r, event) => dispatchEvent(this.env, r, event),
      (other) => host.queueChanged(other),
      (r, rider) => host.projections.push(r, rider),
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

  protected get env(): Env {
    return this.host.env;
  }

  /** Whether nothing is running or waiting to: the shard may forget this instance. */
  idle(): boolean {
    return this.running === 0;
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

  protected readonly lookup: Lookup = (id) => this.host.lookup(id);

  /**
   * Runs `apply` on the current record exclusively and commits its result as a new version. Under
   * If-Match (`expected`), check and write are one step: a record changed since answers 412 without
   * `apply`, or as done if the change is already in effect (a retry of it: RFC 9110 §13.1.1).
   */
  protected async change(
    apply: (r: SubscriptionRecord) => SubscriptionRecord | Promise<SubscriptionRecord>,
    expected?: Expected,
  ): Promise<Outcome<SubscriptionRecord>> {
    return this.exclusive(async () => {
      const r = this.store.load();
      if (!r) return missing();
      if (expected?.version !== undefined && r.version !== expected.version) {
        if (!expected.done(r)) return stale();
        const noted = expected.noted?.(r) ?? r;
        return { ok: true, value: sameRecord(noted, r) ? r : this.commit(noted) };
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
  protected exclusive<T>(work: () => Promise<T>): Promise<T> {
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
        fault("subscription.committed");
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
   * Gives up work `ref` (a start's, stop's or resize's reference; the operation of a cancel or an
   * auto_renew) unless it applied already as a start, stop or resize: whether it had. Decided here,
   * with the changes it would make, so a run of it still under way (an operation given up while
   * its last attempt is slow) can no longer apply once its operation answers that it did not.
   */
  async giveUpWork(ref: string): Promise<Outcome<{ applied: boolean }>> {
    return this.exclusive(async () => {
      const r = this.store.load();
      if (!r) return missing();
      if (r.ranBy?.includes(ref) || r.resizedBy?.includes(ref)) return { ok: true, value: { applied: true } };
      if (!r.givenUpBy?.includes(ref))
        this.commit({ ...r, givenUpBy: [...(r.givenUpBy ?? []), ref].slice(-32) });
      return { ok: true, value: { applied: false } };
    });
  }

  /** Gives this subscription up if it is not created yet (`fail` would end a live one): whether it was. */
  async giveUpUnlessCreated(at: Date): Promise<boolean> {
    return this.exclusive(async () => {
      if (this.store.load()) return false;
      this.store.giveUp(at.toISOString());
      return true;
    });
  }

  /**
   * Stores the next version and, for a syndicated product, the event describing it, in one
   * storage transaction: the event can never be lost, nor sent for a change that did not happen.
   */
  protected commit(next: SubscriptionRecord): SubscriptionRecord {
    this.reads.recordChanged();
    const at = Date.now();
    let written: SubscriptionRecord;
    try {
      written = this.host.storage.transactionSync(() => {
        this.steps.end();
        const record = this.store.write(next);
        this.host.unpushed.note(this.id, record.version, at);
        return record;
      });
    } catch (error) {
      this.steps.forget();
      this.store.forget();
      throw error;
    }
    // In the same turn as the commit, so stored with it: no instance can die between the two.
    this.host.checkPushOf(at);
    return written;
  }

  /**
   * Whether this instance pushed `version` to the read model (and so its usage lines, pushed
   * first; an event that failed after it has its own retry). An instance made after a crash does
   * not know: its stored value lags by a push.
   */
  pushedThrough(version: number): boolean {
    return this.store.projectedVersion() >= version;
  }

  /**
   * Pushes what a commit left to push (its instance may have died before): true once all of it
   * is where it goes, false if a push failed (which wakes this subscription again on its own).
   */
  async pushLeft(): Promise<boolean> {
    return this.exclusive(() => this.store.push(this.env));
  }

  /** Wakes this subscription once the place reserved after it counts as abandoned, if one is. */
  protected async wakeWhenPlaceExpires(r: SubscriptionRecord): Promise<void> {
    const expires = r.nextId === null ? 0 : placeExpiresAt(this.env, r);
    if (expires > Date.now()) await this.host.wake(this.id, expires + 1000);
  }

  /** Releases the chain's hold with ended term `r` if nothing else keeps it (`endsChainHold`). */
  protected async endHoldOf(r: SubscriptionRecord): Promise<void> {
    if (r.endedAt === null || !(await endsChainHold(this.env, r, new Date(), this.lookup))) return;
    const released = { ...r, holdReleased: true };
    this.commit(await this.steps.move(this.env, r, -r.amount, releaseReference(r), new Date(), released));
  }

  /**
   * `r` ended for `reason`: the record it leads to, the chain's hold given back with it if nothing
   * else keeps it (`endsChainHold`), else a wake for when a place reserved after it expires.
   */
  protected async ended(
    r: SubscriptionRecord,
    reason: "cancelled" | "expired" | "depleted",
    now: Date,
    also: Partial<SubscriptionRecord>,
  ): Promise<SubscriptionRecord> {
    const next = { ...endedFor(r, reason, now), ...also };
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
}
