import { fanOut } from "../app/fan-out";

/** How far ahead a run looks: the cron runs every five minutes, so whatever ends before the next run. */
export const HORIZON_MS = 5 * 60_000;

/**
 * Enqueues one renewal message for every subscription whose term ends before the next run, a page
 * at a time (never the whole table); past a bound, the renewals consumer pages the rest
 * (`fanOut`). Running it twice only enqueues messages that the consumer recognises as already
 * done. Answers the messages this run enqueued itself.
 */
export function scheduleRenewals(env: Env, now: Date): Promise<number> {
  const before = new Date(now.getTime() + HORIZON_MS).toISOString();
  return fanOut(env, { kind: "renewals", before, at: now.toISOString(), after: null });
}
