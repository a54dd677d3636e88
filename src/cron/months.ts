import { fanOut } from "../app/fan-out";
import { recordUsageClosed, usageClosedThrough } from "../db/charges";
import { monthOf, previousMonth } from "../domain/charges";

export interface MonthClose {
  /** The month being closed: the one before the run's. */
  month: string;
  /** Clouds sent to be billed up to the month's end. */
  enqueued: number;
  /** Whether this run recorded the month closed. */
  closed: boolean;
}

/**
 * Closes the month before `now`'s for usage. Each run pages through the clouds D1 shows running
 * since before the month's end (never the whole table; past a bound the renewals consumer pages the
 * rest, `fanOut`) and sends each to be billed up to it; the
 * run that finds none records the month closed, and from then on its statement is final. A cloud
 * billed up to the end pushes its lines before its read model row, so finding none means every
 * such line is in D1 (but for a push still failing on a cloud D1 already showed stopped: its line
 * goes on the month it lands in). Once closed, a run does nothing.
 */
export async function closeUsageMonth(env: Env, now: Date): Promise<MonthClose> {
  const boundary = monthOf(now).start;
  const month = previousMonth(monthOf(now)).name;
  const through = await usageClosedThrough(env);
  if (through !== null && through >= month) return { month, enqueued: 0, closed: false };
  const enqueued = await fanOut(env, { kind: "monthClose", boundary: boundary.toISOString(), after: null });
  if (enqueued === 0) await recordUsageClosed(env, month);
  return { month, enqueued, closed: enqueued === 0 };
}
