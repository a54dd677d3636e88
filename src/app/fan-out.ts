import { claimDue, releaseDueClaim } from "../db/due-terms";
import { runningSince } from "../db/subscriptions";
import { type FanOut, type RenewalMessage, renewalsQueue } from "./renewals";
import type { MonthCloseMessage } from "./usage";

export const PAGE = 500;
const SEND_BATCH = 100;
/**
 * Pages one invocation enqueues before it hands the rest on. Terms end at noon UTC, so a whole
 * night's renewals can be due in one run: paging them all in one invocation would pass D1's 1,000
 * queries and the subrequests an invocation may make, fail, and take the cron's later steps down
 * with it on every run. 20 pages are 20 queries and 100 sends.
 */
export const PAGES_PER_INVOCATION = 20;
/**
 * How long what a run sent is left to its messages before a later run sends it again: a term whose
 * renewal it enqueued (`claimDue`), a month's running clouds it sent to be billed
 * (`closeUsageMonth`). A night's renewals, or a month's clouds, drain well within it
 * (docs/SCALING.md), so what waits in the queue is not sent again every five minutes; a message
 * that died before it did its work (each is retried for about ten minutes) leaves that work to the
 * first run after it.
 */
export const FAN_OUT_CLAIM_MS = 60 * 60_000;

/**
 * Enqueues one message per row of `work`'s query, a page at a time from its cursor, for at most
 * `PAGES_PER_INVOCATION` pages; if rows remain, enqueues one message that carries the paging on
 * from the last row sent (the renewals consumer runs it, the same way). Answers the rows enqueued
 * here. Every message it sends is idempotent, so a retry from an earlier cursor only repeats some.
 */
export async function fanOut(env: Env, work: FanOut): Promise<number> {
  return work.kind === "renewals"
    ? pages(
        env,
        work.after,
        (after) => {
          const at = new Date(work.at);
          const until = new Date(at.getTime() + FAN_OUT_CLAIM_MS);
          return claimDue(env, new Date(work.before), at, until, after, PAGE);
        },
        (row) => ({ subscription: row.id, at: work.at }) satisfies RenewalMessage,
        (after) => ({ kind: "renewals", before: work.before, at: work.at, after }),
        (unsent) => releaseDueClaim(env, unsent),
      )
    : pages(
        env,
        work.after,
        (after) => runningSince(env, new Date(work.boundary).getTime(), after, PAGE),
        (row) => ({ subscription: row.id, closeMonth: work.boundary }) satisfies MonthCloseMessage,
        (after) => ({ kind: "monthClose", boundary: work.boundary, after }),
        async () => {},
      );
}

async function pages<Row extends { id: string }>(
  env: Env,
  start: Row | null,
  page: (after: Row | null) => Promise<Row[]>,
  message: (row: Row) => RenewalMessage | MonthCloseMessage,
  rest: (after: Row) => FanOut,
  unsent: (ids: string[]) => Promise<void>,
): Promise<number> {
  let cursor = start;
  let sent = 0;
  for (let n = 0; n < PAGES_PER_INVOCATION; n++) {
    const rows = await page(cursor);
    for (let i = 0; i < rows.length; i += SEND_BATCH) {
      try {
        await renewalsQueue(env).sendBatch(
          rows.slice(i, i + SEND_BATCH).map((row) => ({ body: message(row) })),
        );
      } catch (error) {
        // The page's rows not sent are not on their way: the next run (or this one's retry) finds them.
        await unsent(rows.slice(i).map((row) => row.id));
        throw error;
      }
    }
    sent += rows.length;
    const last = rows.at(-1);
    if (!last || rows.length < PAGE) return sent;
    cursor = last;
  }
  if (cursor !== null) await renewalsQueue(env).send({ fanOut: rest(cursor) });
  return sent;
}
