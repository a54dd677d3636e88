import { eq, lt, sql } from "drizzle-orm";
import { REPORT_MEMORY_MS } from "../domain/consumption";
import { database } from "./client";
import { consumptionQueues } from "./schema";

/**
 * The queue consumption report `report` walks: the one stored by its first run, or else `read`'s,
 * stored now. Of two first runs at once, the one stored first is every run's.
 */
export async function queueOfReport(
  env: Env,
  report: string,
  read: () => Promise<string[]>,
  now: Date,
): Promise<string[]> {
  const db = database(env);
  const stored = await db
    .select({ subscriptions: consumptionQueues.subscriptions })
    .from(consumptionQueues)
    .where(eq(consumptionQueues.report, report))
    .get();
  if (stored) return stored.subscriptions;
  const [kept] = await db
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

/** Forgets the queues of reports past their memory. */
export async function deleteExpiredConsumptionQueues(env: Env, now: Date): Promise<void> {
  await database(env)
    .delete(consumptionQueues)
    .where(lt(consumptionQueues.expiresAt, now.toISOString()))
    .run();
}
