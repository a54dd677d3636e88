import { FAN_OUT_CLAIM_MS, fanOut } from "../app/fan-out";
import { claimMonthClose, recordUsageClosed, releaseMonthClose, usageClosedThrough } from "../db/charges";
import { anyRunningSince } from "../db/subscriptions";
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
 * Closes the month before `now`'s for usage. While D1 shows a cloud running since before the
 * month's end, a run pages through them (never the whole table; past a bound the renewals consumer
 * pages the rest, `fanOut`) and sends each to be billed up to it, unless a run did so less than
 * `FAN_OUT_CLAIM_MS` ago (`claimMonthClose`): a month's clouds take longer to bill than the cron's
 * interval, and each run would send every one still waiting in the queue again. The run that finds
 * none records the month closed, and from then on its statement is final. A cloud billed up to the
 * end pushes its lines before its read model row, so finding none means every such line is in D1
 * (but for a push still failing on a cloud D1 already showed stopped: its line goes on the month it
 * lands in). Once closed, a run does nothing.
 */
export async function closeUsageMonth(env: Env, now: Date): Promise<MonthClose> {
  const boundary = monthOf(now).start;
  const month = previousMonth(monthOf(now)).name;
  const through = await usageClosedThrough(env);
  if (through !== null && through >= month) return { month, enqueued: 0, closed: false };
  if (!(await anyRunningSince(env, boundary.getTime()))) {
    await recordUsageClosed(env, month);
    return { month, enqueued: 0, closed: true };
  }
  const staleBefore = new Date(now.getTime() - FAN_OUT_CLAIM_MS);
  if (!(await claimMonthClose(env, month, now, staleBefore))) return { month, enqueued: 0, closed: false };
  try {
    const enqueued = await fanOut(env, { kind: "monthClose", boundary: boundary.toISOString(), after: null });
    return { month, enqueued, closed: false };
  } catch (error) {
    await releaseMonthClose(env, month);
    throw error;
  }
}
