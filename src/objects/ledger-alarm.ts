import { type CommissionState, type Decision, stepFinish } from "../domain/commissions";
import { logError } from "../domain/log";
import * as quota from "../domain/quota";
import type { LedgerCommissions } from "./ledger-commissions";

/**
 * Commissions one run of a ledger's alarm projects or finishes at most (a D1 query each), and
 * calls to other ledgers it makes finishing them: so a run stays within an invocation's D1
 * queries and subrequests however many piled up (after a D1 outage, thousands), the rest left to
 * the next run, which the alarm makes at once.
 */
export const ROWS_PER_ALARM = 250;
export const CALLS_PER_ALARM = 1_000;

/** What a run does with each commission it takes. */
export interface RoundTargets {
  /** Projects a commission in no step into D1's index (a D1 query at most). */
  project(serial: number): Promise<void>;
  /** Finishes a step whose request died: each other holder's ledger called, then projected. */
  finish(serial: number, decision: Decision, final: CommissionState): Promise<void>;
}

/**
 * One run of the alarm over the commissions in a step or not yet indexed, from the one after
 * serial `after` on, in serial order, within `ROWS_PER_ALARM` and `CALLS_PER_ALARM`. A step changed
 * since `stalledBefore` is left to its request. Answers the serial the next run goes on after, or
 * null once the round reached the last one.
 */
export async function alarmRun(
  commissions: LedgerCommissions,
  after: number,
  stalledBefore: number,
  targets: RoundTargets,
): Promise<number | null> {
  const page = commissions.unfinished(after, ROWS_PER_ALARM);
  let reached = after;
  let calls = 0;
  for (const listed of page) {
    if (calls >= CALLS_PER_ALARM) return reached;
    reached = listed.serial;
    // Read again: finishing an earlier row awaited other ledgers, which let requests move this one on
    // (an issue across holders that was `issuing` may be pending, or accepted, by now).
    const row = commissions.record(listed.serial);
    if (!row) continue;
    // One row that cannot be finished now (another ledger down) keeps none of the others waiting.
    try {
      const step = stepFinish(row.state);
      calls += 1;
      if (!step) await targets.project(row.serial);
      else if (row.updated_at <= stalledBefore) {
        calls += quota.groupByHolder(JSON.parse(row.provisions)).length - 1;
        if (row.state === "issuing") commissions.move(row, "failing");
        await targets.finish(row.serial, step.decision, step.final);
      }
    } catch (error) {
      logError("ledger.finish_failed", error, { serial: row.serial, state: row.state });
    }
  }
  return page.length === ROWS_PER_ALARM ? reached : null;
}
