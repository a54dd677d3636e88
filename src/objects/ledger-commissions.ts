import { indexCommission } from "../db/commissions";
import type { CommissionState, Decision } from "../domain/commissions";
import type { WireProvision } from "../domain/holders";
import { logError } from "../domain/log";
import type { Provision } from "../domain/quota";
import type { HoldFailure, HoldResult } from "./ledger-holdings";

/** What issuing a commission answers: its serial, or why it was not issued. */
export type IssueAnswer =
  | { ok: true; serial: number }
  | { ok: false; reason: "refused"; provision: Provision; failure: HoldFailure }
  | { ok: false; reason: "open"; serial: number }
  | { ok: false; reason: "busy" | "abandoned" | "rejected" | "forsaken" };

/** A pending commission as the quota API describes it. */
export interface CommissionView {
  serial: number;
  issueTime: string;
  name: string;
  provisions: WireProvision[];
}

/** The refusal of the provision a holding refused (`result.index`). */
export function refusedAt(
  provisions: readonly Provision[],
  result: Extract<HoldResult, { ok: false }>,
): IssueAnswer {
  const provision = provisions[result.index];
  if (!provision) throw new Error("a ledger blamed a provision it was not given");
  return { ok: false, reason: "refused", provision, failure: result.failure };
}

/** A commission as its issuer asks its home ledger (`homeOf`) to issue it. */
export interface CommissionRequest {
  /** The name this ledger was reached by: the serial blocks it takes are recorded under it. */
  home: string;
  /** Null for stratus's own commissions. */
  serviceId: string | null;
  /** Issuing again with the reference of a live commission answers that one: no double hold. */
  reference: string | null;
  name: string;
  /** Merged (one per holding), for every holder, each named as its ledger names it. */
  provisions: Provision[];
  /** The provisions as the client named them, when that differs (the project dialect): what describe answers. */
  shown?: WireProvision[];
  force: boolean;
  autoAccept: boolean;
  issueTime: string;
  /**
   * For stratus's own commissions that stay pending (a purchase between its hold and its accept):
   * what the recovery sweep needs to settle it should the request die (see `QuotaLedger.sweep`).
   */
  recovery?: RecoveryContext;
  /**
   * Issued only if stratus's own commission `unlessOpen`, kept here, is not open (`openRecovery`),
   * as checked in this call with the issue: otherwise nothing is issued and the answer is "open".
   */
  unlessOpen?: number;
  /** A quota move's attempt (with its `reference`): refused once this ledger answered it "not made". */
  attempt?: string;
}

/** Opaque to the ledger: the application decides from it whether the work took effect. */
export type RecoveryContext = Record<string, unknown>;

/** An open commission's recovery context, and the decision made on it whose follow-up is owed, if any. */
export interface OpenRecovery {
  context: RecoveryContext;
  decision: Decision | null;
}

export interface CommissionRow extends Record<string, SqlStorageValue> {
  serial: number;
  service_id: string | null;
  reference: string | null;
  name: string;
  provisions: string;
  state: CommissionState;
  issue_time: string;
  updated_at: number;
  version: number;
  listed: number;
  indexed: number;
  recovery: string | null;
  shown: string | null;
  /** 1 while the work a decision on a purchase's commission calls for is not done yet (`owe`). */
  follow_up: number;
}

/**
 * The records of the commissions a home ledger keeps, in its storage. A listed commission (a
 * service's, once pending) stays unindexed from each change until D1's index has that version.
 */
export class LedgerCommissions {
  constructor(private readonly sql: SqlStorage) {
    sql.exec(`
      CREATE TABLE IF NOT EXISTS commissions (
        serial INTEGER PRIMARY KEY, service_id TEXT, reference TEXT, name TEXT NOT NULL,
        provisions TEXT NOT NULL, state TEXT NOT NULL, issue_time TEXT NOT NULL,
        updated_at INTEGER NOT NULL, version INTEGER NOT NULL,
        listed INTEGER NOT NULL DEFAULT 0, indexed INTEGER NOT NULL DEFAULT 1);
      CREATE UNIQUE INDEX IF NOT EXISTS commissions_reference ON commissions (reference)
        WHERE reference IS NOT NULL AND state NOT IN ('failing', 'failed');
      CREATE INDEX IF NOT EXISTS commissions_unfinished ON commissions (state)
        WHERE state IN ('issuing', 'failing', 'accepting', 'rejecting') OR indexed = 0;
    `);
    // Ledgers made before recovery contexts existed get the column (and its index) on first wake.
    const columns = sql.exec<{ name: string }>("PRAGMA table_info(commissions)").toArray();
    if (!columns.some((c) => c.name === "recovery"))
      sql.exec("ALTER TABLE commissions ADD COLUMN recovery TEXT");
    // And before the project dialect, the column of the provisions as a client named them.
    if (!columns.some((c) => c.name === "shown")) sql.exec("ALTER TABLE commissions ADD COLUMN shown TEXT");
    // And before decisions owed their follow-up: those decided before owe nothing (their callers did it).
    if (!columns.some((c) => c.name === "follow_up"))
      sql.exec("ALTER TABLE commissions ADD COLUMN follow_up INTEGER NOT NULL DEFAULT 0");
    sql.exec(`DROP INDEX IF EXISTS commissions_recoverable;
      CREATE INDEX IF NOT EXISTS commissions_open ON commissions (updated_at)
        WHERE (state = 'pending' OR follow_up = 1) AND recovery IS NOT NULL`);
  }

  record(serial: number): CommissionRow | undefined {
    return this.sql.exec<CommissionRow>("SELECT * FROM commissions WHERE serial = ?", serial).toArray()[0];
  }

  /** The commission with `reference` that is not being rolled back (at most one: the index says so). */
  live(reference: string): CommissionRow | undefined {
    return this.sql
      .exec<CommissionRow>(
        "SELECT * FROM commissions WHERE reference = ? AND state NOT IN ('failing', 'failed')",
        reference,
      )
      .toArray()[0];
  }

  insert(serial: number, request: CommissionRequest, state: CommissionState): void {
    const listed = state === "pending" && request.serviceId !== null;
    this.sql.exec(
      `INSERT INTO commissions (serial, service_id, reference, name, provisions, state, issue_time, updated_at,
         version, listed, indexed, recovery, shown) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?)`,
      serial,
      request.serviceId,
      request.reference,
      request.name,
      JSON.stringify(request.provisions),
      state,
      request.issueTime,
      Date.now(),
      listed ? 1 : 0,
      listed ? 0 : 1,
      request.recovery ? JSON.stringify({ ...request.recovery, home: request.home }) : null,
      request.shown ? JSON.stringify(request.shown) : null,
    );
  }

  move(row: CommissionRow, state: CommissionState): void {
    const listed = row.listed === 1 || (state === "pending" && row.service_id !== null);
    this.sql.exec(
      "UPDATE commissions SET state = ?, updated_at = ?, version = version + 1, listed = ?, indexed = ? WHERE serial = ?",
      state,
      Date.now(),
      listed ? 1 : 0,
      listed ? 0 : 1,
      row.serial,
    );
  }

  /**
   * Projects listed commission `serial`'s state into D1's index (then it has that version; a change
   * made since leaves it unindexed): false if D1 failed, for the caller to try again.
   */
  async project(env: Env, serial: number): Promise<boolean> {
    const row = this.record(serial);
    if (!row || row.indexed === 1 || row.service_id === null) return true;
    try {
      await indexCommission(env, {
        serial,
        serviceId: row.service_id,
        state: row.state,
        version: row.version,
      });
      this.sql.exec(
        "UPDATE commissions SET indexed = 1 WHERE serial = ? AND version = ?",
        serial,
        row.version,
      );
      return true;
    } catch (error) {
      logError("commission.index_failed", error, { serial });
      return false;
    }
  }

  /**
   * The commissions in a step across ledgers, or not yet indexed, after serial `after`: `limit`, in
   * serial order. Found through `commissions_unfinished`: asked of the table in serial order, SQLite
   * walked every commission after `after`, the ledger's whole history on each alarm.
   */
  unfinished(after: number, limit: number): CommissionRow[] {
    return this.sql
      .exec<CommissionRow>(
        `SELECT * FROM commissions WHERE serial IN (SELECT serial FROM commissions
            WHERE state IN ('issuing', 'failing', 'accepting', 'rejecting') OR indexed = 0)
          AND serial > ? ORDER BY serial LIMIT ?`,
        after,
        limit,
      )
      .toArray();
  }

  anyUnindexed(): boolean {
    return this.sql.exec("SELECT 1 FROM commissions WHERE indexed = 0 LIMIT 1").toArray().length > 0;
  }

  anyInStep(): boolean {
    return (
      this.sql
        .exec(
          "SELECT 1 FROM commissions WHERE state IN ('issuing', 'failing', 'accepting', 'rejecting') LIMIT 1",
        )
        .toArray().length > 0
    );
  }

  /**
   * Commission `serial`'s decision owes its follow-up (a purchase undone: its subscriptions failed,
   * its orders written failed; accepted: its orders completed) until `followedUp`. Recorded before
   * the decision, so no crash can leave a decision without it.
   */
  owe(serial: number): void {
    this.sql.exec("UPDATE commissions SET follow_up = 1 WHERE serial = ?", serial);
  }

  /** Commission `serial`'s recovery context while it is pending or owes its decision's follow-up. */
  openRecovery(serial: number): OpenRecovery | null {
    const row = this.record(serial);
    if (!row || row.recovery === null) return null;
    const context = JSON.parse(row.recovery) as RecoveryContext;
    if (row.state === "pending") return { context, decision: null };
    if (row.follow_up !== 1) return null;
    return { context, decision: row.state === "accepted" || row.state === "accepting" ? "accept" : "reject" };
  }

  followedUp(reference: string): void {
    // Only a live commission owes a follow-up (`owe`); saying so lets `commissions_reference` find
    // it, where the reference alone scanned every commission the ledger ever kept.
    this.sql.exec(
      "UPDATE commissions SET follow_up = 0 WHERE reference = ? AND state NOT IN ('failing', 'failed') AND follow_up = 1",
      reference,
    );
  }

  /**
   * The open commissions with a recovery context (pending, or decided with their follow-up owed),
   * unchanged since `before` (inclusive).
   */
  staleRecoverable(before: number): Array<{ serial: number; recovery: string }> {
    return this.sql
      .exec<{ serial: number; recovery: string }>(
        `SELECT serial, recovery FROM commissions
          WHERE (state = 'pending' OR follow_up = 1) AND recovery IS NOT NULL AND updated_at <= ?`,
        before,
      )
      .toArray();
  }

  /**
   * When the longest-unchanged open commission with a recovery context last changed, if any; with
   * `after`, among those changed after it only (not stale yet as of that cut).
   */
  oldestRecoverable(after = -1): number | null {
    return (
      this.sql
        .exec<{ oldest: number | null }>(
          `SELECT min(updated_at) AS oldest FROM commissions
            WHERE (state = 'pending' OR follow_up = 1) AND recovery IS NOT NULL AND updated_at > ?`,
          after,
        )
        .toArray()[0]?.oldest ?? null
    );
  }
}
