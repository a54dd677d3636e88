import { and, asc, eq, gt, inArray, isNull, lte, or, sql } from "drizzle-orm";
import { database, parameterChunks } from "./client";
import { renewalStopQueued } from "./operations";
import { subscriptions } from "./schema";

/**
 * The cron's due terms in the read model: the terms it pages, and the `followed` column that
 * keeps its index (`subscriptions_due`) to the terms that can be due.
 */

const s = subscriptions;

/**
 * Whether the row `subscriptions` (the one written, or paged) is followed: the term its
 * `next_id` names was created and is live, or ran its course (`ranItsCourse`). A place reserved
 * for a term never created, and a term after it that was cancelled or undone, leave it
 * unfollowed: the due scan finds it, to renew into the place or to expire with its chain.
 */
const FOLLOWED = `exists (select 1 from subscriptions n where n.id = subscriptions.next_id
  and (n.ended_at is null or json_extract(n.body, '$.endReason') = 'expired'))`;

/**
 * Sets `followed` of the terms `ids` from their rows as D1 has them when it runs: each batch of
 * projections ends with it, for the terms it wrote and the terms before them (a term's
 * `followed` changes when the term after it is created or ends, which can be pushed by another
 * shard, or land before the term's own). In the batch, so no crash leaves a term followed that
 * is not (its expiry hidden, its quota held for good). Only rows it changes are written.
 */
export function refollow(env: Env, ids: readonly string[]): D1PreparedStatement {
  return env.DB.prepare(
    `UPDATE subscriptions SET followed = NOT followed
      WHERE id IN (SELECT value FROM json_each(?)) AND followed != ${FOLLOWED}`,
  ).bind(JSON.stringify([...new Set(ids)]));
}

/**
 * Claims a page of subscriptions whose term ends by `before` and that nothing live follows: not
 * ended, and no extension after them that has not ended (`followed`). A place reserved for an
 * extension that was never created (a renewal whose every delivery died) counts as free, so the
 * next run finds it again and the renewal's own ids finish it; a term whose extension was
 * cancelled is found to expire, which ends its chain's hold; one whose extension expired is not
 * (it ran its course). Ordered by (end_time, id) on the `subscriptions_due` index, which holds
 * only these terms: a run reads the terms due, never the history of those renewed or ended.
 *
 * A claimed term is marked queued until `until` (one statement: the page is read and marked
 * together), and a run at `at` passes over terms queued until after it: a backlog that outlasts
 * the cron's interval is not enqueued again by every run. The mark goes with the term's next
 * projection (its renewal planned, the term renewed or expired) or with `releaseDueClaim`; a
 * message that died before either is found again once `until` has passed. A term a queued change
 * of the partner's would stop (`renewalStopQueued`) is not claimed until that change has run.
 */
export async function claimDue(
  env: Env,
  before: Date,
  at: Date,
  until: Date,
  after: { endTime: string; id: string } | null,
  limit: number,
): Promise<Array<{ id: string; endTime: string }>> {
  const rows = await claimQuery(env, before, at, until, after, limit).all();
  // RETURNING answers in no set order: the page's cursor is its last row in the index's order.
  return rows
    .flatMap((r) => (r.endTime === null ? [] : [{ id: r.id, endTime: r.endTime }]))
    .sort((a, b) => (a.endTime === b.endTime ? (a.id < b.id ? -1 : 1) : a.endTime < b.endTime ? -1 : 1));
}

/** The statement `claimDue` runs (its query plan is checked against the partial index). */
export function claimQuery(
  env: Env,
  before: Date,
  at: Date,
  until: Date,
  after: { endTime: string; id: string } | null,
  limit: number,
) {
  return database(env)
    .update(s)
    .set({ renewalQueuedUntil: until.getTime() })
    .where(inArray(s.id, duePage(env, before, at, after, limit)))
    .returning({ id: s.id, endTime: s.endTime });
}

function duePage(
  env: Env,
  before: Date,
  at: Date,
  after: { endTime: string; id: string } | null,
  limit: number,
) {
  return database(env)
    .select({ id: s.id })
    .from(s)
    .where(
      and(
        sql`${s.endTime} is not null`,
        lte(s.endTime, before.toISOString()),
        // The index's own condition, written out (not bound), so SQLite walks it.
        isNull(s.endedAt),
        sql`${s.followed} = 0`,
        // Checked again on the few rows with a place after them (reserved, or its term cancelled):
        // a row `followed` missed (written by the code before it, between the migration and the
        // deploy) costs a read here, never a renewal message every run until it is pushed again.
        or(isNull(s.nextId), sql`not ${sql.raw(FOLLOWED)}`),
        or(isNull(s.renewalQueuedUntil), lte(s.renewalQueuedUntil, at.getTime())),
        // A cancel or an auto_renew off accepted for the term and still queued (its consumer
        // behind, down) decides first: the term is not taken up until it has run (then renewed
        // from its end, should that change fail). Asked here, once a page, not by each renewal.
        sql.raw(`not ${renewalStopQueued("subscriptions")}`),
        after === null
          ? undefined
          : or(gt(s.endTime, after.endTime), and(eq(s.endTime, after.endTime), gt(s.id, after.id))),
      ),
    )
    .orderBy(asc(s.endTime), asc(s.id))
    .limit(limit);
}

/**
 * Whether a change of the partner's that would stop term `id`'s renewal waits in the operations
 * queue (`renewalStopQueued`), as the claim asks it of the terms it pages. A renewal sent without a
 * claim (a catch-up, `catchUp`) asks it when it runs: it took no term up.
 */
export async function renewalStopWaits(env: Env, id: string): Promise<boolean> {
  const row = await database(env)
    .select({ id: s.id })
    .from(s)
    .where(and(eq(s.id, id), sql.raw(renewalStopQueued("subscriptions"))))
    .get();
  return row !== undefined;
}

/**
 * Takes back the claim of terms whose messages were not sent, or whose renewal left the term as
 * it was (a purchase still open, a renewal refused before the term is over): the next run
 * enqueues them again, as it would have without the claim.
 */
export async function releaseDueClaim(env: Env, ids: readonly string[]): Promise<void> {
  for (const chunk of parameterChunks(ids, 1)) {
    await database(env)
      .update(s)
      .set({ renewalQueuedUntil: null })
      .where(and(inArray(s.id, chunk), sql`${s.renewalQueuedUntil} is not null`))
      .run();
  }
}
