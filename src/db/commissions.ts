import { and, asc, eq, inArray, lt } from "drizzle-orm";
import type { Env } from "../env";
import { database } from "./client";
import { type CommissionState, commissions, type StoredProvision } from "./schema";

export type Commission = typeof commissions.$inferSelect;

/** Allocates the next serial (SQLite AUTOINCREMENT: strictly increasing, never reused). */
export async function openCommission(
  env: Env,
  input: { serviceId: string; name: string; provisions: StoredProvision[]; now: Date },
): Promise<Commission> {
  const at = input.now.toISOString();
  return database(env)
    .insert(commissions)
    .values({
      serviceId: input.serviceId,
      name: input.name,
      provisions: input.provisions,
      state: "issuing",
      issueTime: at,
      updatedAt: at,
    })
    .returning()
    .get();
}

/** Moves a commission from one of `from` to `to`; false if it was in no such state (someone else moved it). */
export async function transition(
  env: Env,
  serial: number,
  from: readonly CommissionState[],
  to: CommissionState,
  now: Date,
): Promise<boolean> {
  const rows = await database(env)
    .update(commissions)
    .set({ state: to, updatedAt: now.toISOString() })
    .where(and(eq(commissions.serial, serial), inArray(commissions.state, [...from])))
    .returning({ serial: commissions.serial })
    .all();
  return rows.length > 0;
}

export async function findCommission(
  env: Env,
  serial: number,
  serviceId: string,
): Promise<Commission | undefined> {
  return database(env)
    .select()
    .from(commissions)
    .where(and(eq(commissions.serial, serial), eq(commissions.serviceId, serviceId)))
    .get();
}

export async function pendingSerials(env: Env, serviceId: string): Promise<number[]> {
  const rows = await database(env)
    .select({ serial: commissions.serial })
    .from(commissions)
    .where(and(eq(commissions.serviceId, serviceId), eq(commissions.state, "pending")))
    .orderBy(asc(commissions.serial))
    .all();
  return rows.map((r) => r.serial);
}

/** Commissions left mid-issue or mid-resolve by a request that died, oldest first. */
export async function stalledCommissions(
  env: Env,
  updatedBefore: Date,
  limit: number,
): Promise<Commission[]> {
  return database(env)
    .select()
    .from(commissions)
    .where(
      and(
        inArray(commissions.state, ["issuing", "accepting", "rejecting"]),
        lt(commissions.updatedAt, updatedBefore.toISOString()),
      ),
    )
    .orderBy(asc(commissions.serial))
    .limit(limit)
    .all();
}
