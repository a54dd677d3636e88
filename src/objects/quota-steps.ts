import { AppError } from "../domain/errors";
import { fault } from "../domain/faults";
import type { SubscriptionRecord } from "../domain/subscriptions";
import { issueCommission } from "./commission-issue";
import { ledgerOf } from "./quota-ledger";

/** When an object finishes a quota step whose change never came back. */
const STEP_RECOVERY_MS = 30_000;

/** A quota move that a subscription's change depends on, recorded before the ledger is asked. */
export interface QuotaStep {
  /** The move's commission reference: the ledger answers by it whether the move was made. */
  reference: string;
  /**
   * This attempt at the move (absent in steps recorded before attempts were): once the ledger has
   * answered it "not made", it refuses the attempt should its call still arrive.
   */
  attempt?: string;
  /** The ledger that keeps that commission: the subscription's customer's. */
  holder: string;
  /** The record the change commits once the move is made. */
  next: SubscriptionRecord;
}

/**
 * A subscription's quota moves, made crash-safe. A change that moves quota (an amount change, an
 * end) records the move and the record it leads to before asking the ledger, and commits that
 * record after, which ends the step in the same transaction. Should the object die in between,
 * or the ledger's answer be lost, the step is still there: the object finishes it before any
 * other change (and on its alarm) by asking the ledger how the move ended. Made, the change is
 * committed; not made, it is dropped (its caller never got an answer). So a subscription's amount
 * and the quota it holds never disagree past a crash. A shard keeps one row per subscription with
 * a step open.
 */
export class QuotaSteps {
  /** Whether this instance has read what storage holds; until then `current` is unknown. */
  private read = false;
  private current: QuotaStep | null = null;
  private readonly sql: SqlStorage;

  constructor(
    private readonly storage: DurableObjectStorage,
    private readonly id: string,
    /** The shard's subscriptions with a step open: this one's row is read only if it is one. */
    private readonly open: Set<string>,
    /** Asks to be woken after `ms` (the shard's alarm). */
    private readonly wakeIn: (ms: number) => Promise<void>,
    /** Commits the record a step led to, which ends the step. */
    private readonly commit: (next: SubscriptionRecord) => unknown,
  ) {
    this.sql = storage.sql;
  }

  /**
   * Moves the customer's quota by `quantity` for a change that leads to `next`, as a step that
   * survives a crash: answers `next`, for the caller to commit (which ends the step), once the
   * move is made. The move is a commission accepted at once and keyed by `reference`, so a retry
   * never counts twice.
   */
  async move(
    env: Env,
    r: SubscriptionRecord,
    quantity: number,
    reference: string,
    now: Date,
    next: SubscriptionRecord,
  ): Promise<SubscriptionRecord> {
    const attempt = crypto.randomUUID();
    this.storage.transactionSync(() => this.begin({ reference, attempt, holder: r.customerId, next }));
    // Whatever happens next, the alarm finishes the step should nothing else come along.
    await this.wakeIn(STEP_RECOVERY_MS);
    fault("subscription.step");
    try {
      await issueCommission(
        env,
        { serviceId: null, partnerId: r.partnerId },
        {
          name: reference,
          force: false,
          autoAccept: true,
          reference,
          attempt,
          provisions: [{ holder: r.customerId, source: "system", resource: r.quotaResource, quantity }],
        },
        now,
      );
    } catch (error) {
      // A refusal moved nothing, so the step is over; any other failure may have moved it or not.
      if (error instanceof AppError) this.storage.transactionSync(() => this.end());
      throw error;
    }
    fault("subscription.moved");
    return next;
  }

  /** Records `step`; call inside a storage transaction. */
  begin(step: QuotaStep): void {
    this.sql.exec(
      "INSERT OR REPLACE INTO quota_steps (subscription, body) VALUES (?, ?)",
      this.id,
      JSON.stringify(step),
    );
    this.open.add(this.id);
    this.read = true;
    this.current = step;
  }

  /** Ends the open step, if any; call inside the transaction that commits what it led to. */
  end(): void {
    if (this.pending() === null) return;
    this.sql.exec("DELETE FROM quota_steps WHERE subscription = ?", this.id);
    this.open.delete(this.id);
    this.current = null;
  }

  /** The step still open: at the start of a change, one that an earlier attempt left unfinished. */
  pending(): QuotaStep | null {
    if (!this.read) {
      this.read = true;
      const body = this.open.has(this.id)
        ? this.sql
            .exec<{ body: string }>("SELECT body FROM quota_steps WHERE subscription = ?", this.id)
            .toArray()[0]?.body
        : undefined;
      this.current = body === undefined ? null : (JSON.parse(body) as QuotaStep);
    }
    return this.current;
  }

  /**
   * A quota step an earlier attempt left open: the ledger says whether its move was made (a move
   * is accepted in the one call that makes it, so a live commission by its reference is one
   * made). Made, the change it led to is committed; not made, it is dropped.
   */
  async finishLeft(env: Env): Promise<void> {
    const left = this.pending();
    if (!left) return;
    fault("subscription.asked");
    const ended = await ledgerOf(env, left.holder).settleReferenced(
      left.reference,
      "accept",
      false,
      left.attempt,
    );
    if (ended === "accepted") this.commit(left.next);
    else this.storage.transactionSync(() => this.end());
  }

  /** The shard's table of open steps. */
  static createTable(sql: SqlStorage): void {
    sql.exec("CREATE TABLE IF NOT EXISTS quota_steps (subscription TEXT PRIMARY KEY, body TEXT NOT NULL)");
  }

  /** The subscriptions of the shard with a step open. */
  static open(sql: SqlStorage): string[] {
    return sql
      .exec<{ subscription: string }>("SELECT subscription FROM quota_steps")
      .toArray()
      .map((row) => row.subscription);
  }

  /** After a transaction rolled back: what storage holds is read again. */
  forget(): void {
    this.read = false;
    this.current = null;
    const open = this.sql.exec("SELECT 1 FROM quota_steps WHERE subscription = ?", this.id).toArray();
    if (open.length > 0) this.open.add(this.id);
    else this.open.delete(this.id);
  }
}
