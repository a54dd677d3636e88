import { type RenewalMessage, renewalsQueue } from "../app/renewals";
import { dueSubscriptions } from "../db/subscriptions";

/** How far ahead a run looks: the cron runs every five minutes, so whatever ends before the next run. */
export const HORIZON_MS = 5 * 60_000;
const PAGE = 500;
const SEND_BATCH = 100;

/**
 * Finds every subscription whose term ends before the next run, a page at a time (never the
 * whole table), and enqueues one renewal message for each. Running it twice only enqueues
 * messages that the consumer recognises as already done.
 */
export async function scheduleRenewals(env: Env, now: Date): Promise<number> {
  const before = new Date(now.getTime() + HORIZON_MS);
  let cursor: { endTime: string; id: string } | null = null;
  let found = 0;
  for (;;) {
    const page = await dueSubscriptions(env, before, cursor, PAGE);
    for (let i = 0; i < page.length; i += SEND_BATCH) {
      const messages = page.slice(i, i + SEND_BATCH).map((row) => ({
        body: { subscription: row.id, at: now.toISOString() } satisfies RenewalMessage,
      }));
      await renewalsQueue(env).sendBatch(messages);
    }
    found += page.length;
    const last = page.at(-1);
    if (!last || page.length < PAGE) return found;
    cursor = last;
  }
}
