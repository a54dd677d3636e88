import { lt, sql } from "drizzle-orm";
import { REPORT_MEMORY_MS } from "../domain/consumption";
import { database, deleteChunked } from "./client";
import { consumptionQueues } from "./schema";

/**
 * The queue consumption report `report` walks: the one stored by its first run, or else `read`'s,
 * stored at `now` (when it is stored, not the report's time: it is remembered `REPORT_MEMORY_MS`
 * from then). Of two first runs at once, the one stored first is every run's. One statement: a
 * run again (rare) reads the queue in vain, a first run (every report) makes no read before it.
 */
export async function queueOfReport(
  env: Env,
  report: string,
  read: () => Promise<string[]>,
  now: Date,
): Promise<string[]> {
  const [kept] = await database(env)
    .insert(consumptionQueues)
    .values({
      report,
      subscriptions: await read(),
      expiresAt: new Date(now.getTime() + REPORT_MEMORY_MS).toISOString(),
    })
    // A no-op update, so the row another run stored first is returned as it is.
    .onConflictDoUpdate({ target: consumptionQueues.report, set: { report: sql`report` } })
    .returning({ subscriptions: consumptionQueues.subscriptions });
  if (!kept) throw new Error(`no queue stored for consumption report ${report}`);
  return kept.subscriptions;
}

/** Forgets the queues of reports past their memory, a bounded number a run (`deleteChunked`): answers how many. */
export function deleteExpiredConsumptionQueues(env: Env, now: Date): Promise<number> {
  return deleteChunked(env, consumptionQueues, lt(consumptionQueues.expiresAt, now.toISOString()));
}
