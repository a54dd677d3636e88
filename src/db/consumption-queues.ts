import { lt, sql } from "drizzle-orm";
import { REPORT_MEMORY_MS } from "../domain/consumption";
import { database, deleteChunked } from "./client";
import { consumptionQueues } from "./schema";

/**
 * The queue consumption report `report` walks, and when its first run began at the earliest: the
 * ones stored by the run that stored first, or else `read`'s and `since` (the caller's: now for a
 * run known to be the report's first; otherwise the report's acceptance, as an earlier run's queue
 * may have been forgotten), remembered `REPORT_MEMORY_MS` from `since` (its `expiresAt` less the
 * memory). No run of the report draws before the time stored, and none draws late enough to find
 * it forgotten (`mayStillDraw`). One statement: a run again (rare) reads the queue in vain, a
 * first run (every report) makes no read before it.
 */
export async function queueOfReport(
  env: Env,
  report: string,
  read: () => Promise<string[]>,
  since: Date,
): Promise<{ queue: string[]; since: Date }> {
  const [kept] = await database(env)
    .insert(consumptionQueues)
    .values({
      report,
      subscriptions: await read(),
      expiresAt: new Date(since.getTime() + REPORT_MEMORY_MS).toISOString(),
    })
    // A no-op update, so the row another run stored first is returned as it is.
    .onConflictDoUpdate({ target: consumptionQueues.report, set: { report: sql`report` } })
    .returning({ subscriptions: consumptionQueues.subscriptions, expiresAt: consumptionQueues.expiresAt });
  if (!kept) throw new Error(`no queue stored for consumption report ${report}`);
  return { queue: kept.subscriptions, since: new Date(Date.parse(kept.expiresAt) - REPORT_MEMORY_MS) };
}

/** Forgets the queues of reports past their memory, a bounded number a run (`deleteChunked`): answers how many. */
export function deleteExpiredConsumptionQueues(env: Env, now: Date): Promise<number> {
  return deleteChunked(env, consumptionQueues, lt(consumptionQueues.expiresAt, now.toISOString()));
}
