import { and, asc, eq, inArray, isNull, lt, ne } from "drizzle-orm";
import type { Env } from "../env";
import { database } from "./client";
import { type CommissionState, commissions, type StoredProvision } from "./schema";

export type Commission = typeof commissions.$inferSelect;

/** Allocates the next serial (SQLite AUTOINCREMENT: strictly increasing, never reused). */
export async function openCommission(
  env: Env,
  input: {
    serviceId: string | null;
    reference: string | null;
    name: string;
    provisions: StoredProvision[];
    now: Date;
  },
): Promise<Commission | null> {
  const at = input.now.toISOString();
  const row = await database(env)
    .insert(commissions)
    .values({
      serviceId: input.serviceId,
      reference: input.reference,
      name: input.name,
      provisions: input.provisions,
      state: "issuing",
      issueTime: at,
      updatedAt: at,
    })
    // A live commission with the same reference already exists: the caller resumes that one.
    .onConflictDoNothing()
    .returning()
    .get();
  return row ?? null;
}

export async function findByReference(env: Env, reference: string): Promise<Commission | undefined> {
  return database(env)
    .select()
    .from(commissions)
    .where(and(eq(commissions.reference, reference), ne(commissions.state, "failed")))
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

/** `serviceId` null finds the commissions stratus issued itself. */
export async function findCommission(
  env: Env,
  serial: number,
  serviceId: string | null,
): Promise<Commission | undefined> {
  const issuer = serviceId === null ? isNull(commissions.serviceId) : eq(commissions.serviceId, serviceId);
  return database(env)
    .select()
    .from(commissions)
    .where(and(eq(commissions.serial, serial), issuer))
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
