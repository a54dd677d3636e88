import { DurableObject } from "cloudflare:workers";
import { takeSerialBlock } from "../db/commissions";
import { type CommissionState, type Decision, RESOLVED, RESOLVING } from "../domain/commissions";
import { logError } from "../domain/log";
import * as quota from "../domain/quota";
import { recoveryBoundMs } from "../domain/recovery";
import { IssuesUnderWay } from "./issues-under-way";
import { alarmRun } from "./ledger-alarm";
import {
  type CommissionRequest,
  type CommissionRow,
  type CommissionView,
  type IssueAnswer,
  LedgerCommissions,
  type OpenRecovery,
  refusedAt,
} from "./ledger-commissions";
import { LedgerForsakenMoves } from "./ledger-forsaken-moves";
import { type HoldingView, type HoldResult, LedgerHoldings, type LedgerProvision } from "./ledger-holdings";
import { LedgerMemberships } from "./ledger-memberships";
import { LedgerSerials } from "./ledger-serials";
import { LedgerWakes } from "./ledger-wakes";
import { idOf } from "./object-ids";
import { operationsQueue, type RecoveryRequest } from "./operations-queue";

/** How long a step across ledgers may take before the alarm assumes its request died and finishes it. */
const STALL_MS = 60_000;

/**
 * One holder's quota ledger, and the home of the commissions whose first holder it is.
 *
 * As a holder's ledger it keeps the holdings and the provisions of the unresolved commissions
 * that touch them (`LedgerHoldings`). Every mutation is one synchronous storage transaction, so
 * concurrent commissions against a holder serialize here and can never over-commit.
 *
 * As a commission's home it hands out the serial (`LedgerSerials`, from a block taken from D1),
 * keeps the commission's record and decision (`LedgerCommissions`), drives the other holders'
 * ledgers through issue and resolution, and projects a service's commissions into D1's index. A
 * commission on this holder alone, the common case, is issued (and accepted) in one transaction.
 */
export class QuotaLedger extends DurableObject<Env> {
  private readonly holders: LedgerHoldings;
  private readonly memberships: LedgerMemberships;
  private readonly serials: LedgerSerials;
  private readonly commissions: LedgerCommissions;
  private readonly forsaken: LedgerForsakenMoves;
  private readonly recoveryMs: number;
  private readonly issuing = new IssuesUnderWay();
  private readonly wakes: LedgerWakes;
  /** The serial after which the alarm's next run goes on (0: a round from the first). */
  private alarmFrom = 0;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    const sql = ctx.storage.sql;
    this.holders = new LedgerHoldings(sql);
    this.memberships = new LedgerMemberships(sql, this.holders);
    this.recoveryMs = recoveryBoundMs(env);
    this.serials = new LedgerSerials(sql, (home) => takeSerialBlock(this.env, home));
    this.commissions = new LedgerCommissions(sql);
    this.forsaken = new LedgerForsakenMoves(sql);
    this.wakes = new LedgerWakes(ctx.storage);
  }

  // ---- holdings ------------------------------------------------------------------------------

  setLimit(source: string, resource: string, limit: number): HoldingView {
    return this.holders.setLimit(source, resource, limit);
  }

  /**
   * A member's limit on the project `source` stands for, as membership `generation`; null, setting
   * nothing, once that membership ended (`closeSource`): the membership a caller checked in D1 may
   * be gone by the time it gets here, and another begun.
   */
  setMemberLimit(source: string, generation: string, resource: string, limit: number): HoldingView | null {
    return this.atomically(() =>
      this.memberships.refuses(source, generation) ? null : this.holders.setLimit(source, resource, limit),
    );
  }

  closeSource(source: string, generation: string): void {
    this.atomically(() => this.memberships.close(source, generation));
  }

  /** False: that membership ended already (a join that lands after its removal's close opens nothing). */
  openSource(source: string, generation: string): boolean {
    return this.atomically(() => this.memberships.open(source, generation));
  }

  holdings(): HoldingView[] {
    return this.holders.all();
  }

  /**
   * Holds this holder's provisions of commission `serial`, all or none. Holding a serial this
   * ledger already knows is a no-op, so a retried step never counts twice, and a step that arrives
   * after the commission was rolled back changes nothing.
   */
  hold(serial: number, provisions: LedgerProvision[], force: boolean): HoldResult {
    return this.atomically(() => this.holders.hold(serial, provisions, force));
  }

  /** Finalizes a held commission here. Idempotent, and cannot fail: it only narrows usage. */
  accept(serial: number): void {
    this.atomically(() => this.holders.settle(serial, "accept"));
  }

  /** Undoes a held commission here. Idempotent, and cannot fail: it only narrows usage. */
  reject(serial: number): void {
    this.atomically(() => this.holders.settle(serial, "reject"));
  }

  // ---- commissions kept here ---------------------------------------------------------------------

  async issue(request: CommissionRequest): Promise<IssueAnswer> {
    if (request.reference === null) return this.issueNow(request);
    return this.issuing.track(request.reference, () => this.issueNow(request));
  }

  private async issueNow(request: CommissionRequest): Promise<IssueAnswer> {
    // Indexed in D1 after its transaction: the alarm first, so a ledger dying between them is covered.
    if (!request.autoAccept && request.serviceId !== null) await this.wakes.toIndex();
    // Taking a serial block may wait on D1, which lets other calls in: everything after is decided
    // with no other await before its transaction, so two issues of one reference never both find it free.
    await this.serials.ensure(request.home);
    // A renewal buys nothing while its term's purchase is open (`renewOrExpire`): asked first, as
    // before any renewal bought, with no await between the answer and the issue's transaction.
    if (request.unlessOpen !== undefined && this.commissions.openRecovery(request.unlessOpen))
      return { ok: false, reason: "open", serial: request.unlessOpen };
    // Answered "not made" before it came: made now, it would hold quota for a dropped change.
    if (request.attempt !== undefined && this.forsaken.has(request.reference ?? "", request.attempt))
      return { ok: false, reason: "forsaken" };
    if (request.reference !== null) {
      const live = this.commissions.live(request.reference);
      if (live) return this.resume(live, request.autoAccept);
    }
    const own = request.provisions.filter((p) => p.holder === request.home);
    if (own.length === request.provisions.length) return this.issueHere(request);
    return this.issueAcross(request, own);
  }

  /** A pending commission of `serviceId` (null: stratus's own), or null. */
  describe(serial: number, serviceId: string | null): CommissionView | null {
    const row = this.commissions.record(serial);
    if (!row || row.service_id !== serviceId || row.state !== "pending") return null;
    return {
      serial: row.serial,
      issueTime: row.issue_time,
      name: row.name,
      provisions: JSON.parse(row.shown ?? row.provisions),
    };
  }

  /**
   * Accepts or rejects a commission of `serviceId` kept here. A resolution already under way is
   * finished first; if it was the other decision, the commission is no longer pending: "missing".
   */
  async resolve(serial: number, serviceId: string | null, decision: Decision): Promise<"done" | "missing"> {
    // Whose it is first: a caller naming another's serial sets no alarm here.
    if (this.commissions.record(serial)?.service_id !== serviceId) return "missing";
    // As in `issue`; before the row is read, as nothing may await between that read and its transaction.
    if (serviceId !== null) await this.wakes.toIndex();
    const row = this.commissions.record(serial);
    if (!row) return "missing";
    if (row.state === "pending" && quota.groupByHolder(JSON.parse(row.provisions)).length <= 1) {
      // Every provision is held here: settled and recorded in one transaction, with no step
      // between for a crash to leave half-way (the steps are for commissions across ledgers).
      this.atomically(() => {
        this.holders.settle(serial, decision);
        this.commissions.move(row, RESOLVED[decision]);
      });
      if (row.listed === 1) await this.project(serial);
      return "done";
    }
    if (row.state === "pending") {
      // Before the decision is recorded: a request that dies between the ledgers leaves it to the alarm.
      await this.wakes.within(STALL_MS);
      this.commissions.move(row, RESOLVING[decision]);
    } else if (row.state !== "accepting" && row.state !== "rejecting") return "missing";
    const underway: Decision = this.commissions.record(serial)?.state === "accepting" ? "accept" : "reject";
    await this.finish(serial, underway, RESOLVED[underway]);
    return underway === decision ? "done" : "missing";
  }

  /**
   * Carries stratus's own commission `reference` to `decision` if it is still open, and tells where
   * it ended (null: none live has it; `attempt`, a quota move's, is then refused: `LedgerForsakenMoves`).
   */
  async settleReferenced(
    reference: string,
    decision: Decision,
    followUp = false,
    attempt?: string,
  ): Promise<CommissionState | null> {
    // An issue of this reference under way here is decided first: what it does is the answer.
    await this.issuing.decided(reference);
    const row = this.commissions.live(reference);
    if (!row) {
      if (attempt !== undefined) this.forsaken.forsake(reference, attempt, Date.now());
      return null;
    }
    if (row.state === "pending" || row.state === "accepting" || row.state === "rejecting") {
      // Owed until the caller says it is done (`followedUp`): the sweep finishes it if the caller dies.
      if (followUp && row.recovery !== null) this.commissions.owe(row.serial);
      await this.resolve(row.serial, row.service_id, decision);
    }
    return this.commissions.record(row.serial)?.state ?? null;
  }

  /** The work the decision on commission `reference` called for is done. */
  followedUp(reference: string): void {
    this.commissions.followedUp(reference);
  }

  /**
   * The recovery context of stratus's own commission `serial` while it is open: pending
   * (`decision` null), or decided with its follow-up still owed (`decision` what was decided).
   */
  openRecovery(serial: number): OpenRecovery | null {
    return this.commissions.openRecovery(serial);
  }

  /**
   * Asks the application to settle every pending commission kept here whose request may be gone
   * (pending for the recovery bound as of `now`): one recovery message each on the operations queue,
   * whose consumer settles it by what its context says happened. Answers what it asked about.
   * Asking again is harmless: settling is idempotent.
   */
  async sweep(now: number): Promise<RecoveryRequest[]> {
    const stale = this.commissions.staleRecoverable(now - this.recoveryMs);
    const asked = stale.map((row) => ({
      home: (JSON.parse(row.recovery) as { home: string }).home,
      serial: row.serial,
    }));
    const messages = asked.map((recover) => ({ body: { recover } }));
    for (let i = 0; i < messages.length; i += 100)
      await operationsQueue(this.env).sendBatch(messages.slice(i, i + 100));
    return asked;
  }

  /**
   * Finishes the steps across ledgers whose requests died, and retries the index projection, a
   * bounded page a run (`alarmRun`), the next run at once while some are left; the index, while D1
   * keeps failing it, later each run (`LedgerWakes`).
   */
  override async alarm(): Promise<void> {
    // Once a round over the commissions, not again in each of its runs. A queue refusing the asks
    // keeps none of the work below waiting: they are made again a recovery bound later (below).
    if (this.alarmFrom === 0) {
      await this.sweep(Date.now()).catch((error) => logError("ledger.sweep_failed", error));
    }
    const now = Date.now();
    // Each open commission is asked about once open for the bound (not a bound after the oldest)...
    const fresh = this.commissions.oldestRecoverable(now - this.recoveryMs);
    if (fresh !== null) await this.wakes.within(fresh + this.recoveryMs - now);
    // ...and those past it again a bound later, should their message have been lost.
    if (this.commissions.oldestRecoverable() !== null) await this.wakes.within(this.recoveryMs);
    this.wakes.runStarts();
    const next = await alarmRun(this.commissions, this.alarmFrom, Date.now() - STALL_MS, {
      project: (serial) => this.project(serial),
      finish: (serial, decision, final) => this.finish(serial, decision, final),
    });
    this.alarmFrom = next ?? 0;
    this.wakes.runEnds();
    if (next !== null) await this.wakes.within(0);
    if (this.commissions.anyUnindexed()) await this.wakes.toIndex();
    // A step not stalled yet, or one that could not be finished now.
    if (this.commissions.anyInStep()) await this.wakes.within(STALL_MS);
  }

  // ---- issuing ---------------------------------------------------------------------------------

  private async resume(row: CommissionRow, autoAccept: boolean): Promise<IssueAnswer> {
    if (row.state === "issuing") return { ok: false, reason: "busy" };
    // What it was issued for was given up (a purchase the recovery sweep undid): not to be resumed.
    if (row.state === "rejecting" || row.state === "rejected") return { ok: false, reason: "rejected" };
    if (autoAccept && (row.state === "pending" || row.state === "accepting")) {
      await this.resolve(row.serial, row.service_id, "accept");
    }
    return { ok: true, serial: row.serial };
  }

  /** Every provision is this holder's (or there is none): one transaction, no other call. */
  private async issueHere(request: CommissionRequest): Promise<IssueAnswer> {
    const answer = this.atomically((): IssueAnswer => {
      const serial = this.serials.next();
      const result = request.autoAccept
        ? this.holders.take(request.provisions, request.force)
        : this.holders.hold(serial, request.provisions, request.force, true);
      if (!result.ok) return refusedAt(request.provisions, result);
      // An accepted commission needs a record only to be found again by its reference: nothing
      // else can name its serial (the provisions were never pending anywhere).
      if (!request.autoAccept || request.reference !== null) {
        this.commissions.insert(serial, request, request.autoAccept ? "accepted" : "pending");
      }
      return { ok: true, serial };
    });
    if (answer.ok && !request.autoAccept) {
      if (request.recovery) await this.wakes.within(this.recoveryMs);
      // Only a service's commissions are indexed in D1 (stratus's own are found by reference).
      if (request.serviceId !== null) await this.project(answer.serial);
    }
    return answer;
  }

  /**
   * Provisions on other holders too: recorded as `issuing`, held here, then on each other holder
   * in the fixed order. If one refuses, or the alarm rolls the issue back first, all are undone.
   */
  private async issueAcross(request: CommissionRequest, own: quota.Provision[]): Promise<IssueAnswer> {
    // The alarm is set first: whatever happens after, an issue left half-way gets rolled back.
    await this.wakes.within(STALL_MS);
    const serial = this.atomically(() => {
      const serial = this.serials.next();
      this.commissions.insert(serial, request, "issuing");
      return serial;
    });
    let refusal: IssueAnswer | null = null;
    const here = this.hold(serial, own, request.force);
    if (!here.ok) refusal = refusedAt(own, here);
    for (const [holder, theirs] of quota.groupByHolder(request.provisions)) {
      if (refusal || holder === request.home) continue;
      const held = await ledgerOf(this.env, holder).hold(serial, theirs, request.force);
      if (!held.ok) refusal = refusedAt(theirs, held);
    }
    const row = this.commissions.record(serial);
    if (row?.state !== "issuing") return { ok: false, reason: "abandoned" };
    if (refusal) {
      this.commissions.move(row, "failing");
      await this.finish(serial, "reject", "failed");
      return refusal;
    }
    this.commissions.move(row, request.autoAccept ? "accepting" : "pending");
    if (request.autoAccept) {
      // Accepted from here on, whatever happens next: a ledger that fails now is finished by the
      // alarm (set above), so the answer is the serial. A 5xx would have the service, which cannot
      // name this commission again, issue it a second time.
      try {
        await this.finish(serial, "accept", "accepted");
      } catch (error) {
        logError("commission.accept_deferred", error, { serial });
        await this.wakes.within(STALL_MS);
      }
    } else {
      if (request.recovery) await this.wakes.within(this.recoveryMs);
      await this.project(serial);
    }
    return { ok: true, serial };
  }

  // ---- resolving -------------------------------------------------------------------------------

  /**
   * Applies `decision` on every holder of commission `serial` (idempotent on each), then records
   * `final`. Only a commission in a step that leads there (`accepting`, `rejecting`, `failing`) moves.
   */
  private async finish(serial: number, decision: Decision, final: CommissionState): Promise<void> {
    const row = this.commissions.record(serial);
    if (!row) return;
    const provisions: quota.Provision[] = JSON.parse(row.provisions);
    // This ledger is the first holder's (`homeOf`): the others are reached over RPC.
    const others = quota
      .groupByHolder(provisions)
      .map(([holder]) => holder)
      .slice(1);
    this.atomically(() => this.holders.settle(serial, decision));
    await Promise.all(others.map((h) => ledgerOf(this.env, h)[decision](serial)));
    const now = this.commissions.record(serial);
    if (now && now.state === (final === "failed" ? "failing" : RESOLVING[decision]))
      this.commissions.move(now, final);
    if (now?.listed) await this.project(serial);
  }

  // ---- the D1 index ----------------------------------------------------------------------------

  /** Projects a listed commission's state into D1; if D1 fails, the alarm tries again (`LedgerWakes`). */
  private async project(serial: number): Promise<void> {
    if (!(await this.commissions.project(this.env, serial))) await this.wakes.indexFailed();
  }

  /**
   * One storage transaction. If it throws, storage rolls back and so does what this instance
   * keeps in memory: it is read again from storage.
   */
  private atomically<T>(work: () => T): T {
    try {
      return this.ctx.storage.transactionSync(work);
    } catch (error) {
      this.holders.forget();
      this.serials.forget();
      throw error;
    }
  }
}

/** The ledger of one holder (and home of the commissions `homeOf` gives it). */
export function ledgerOf(env: Env, holder: string): DurableObjectStub<QuotaLedger> {
  return env.QUOTA_LEDGER.get(idOf(env.QUOTA_LEDGER, holder));
}
