import { and, asc, eq, inArray, sql } from "drizzle-orm";
import { database } from "./client";
import { commissionIndex, serialBlocks } from "./schema";

/** Gives ledger `home` the next block of serials (AUTOINCREMENT: strictly increasing, never reused). */
export async function takeSerialBlock(env: Env, home: string): Promise<number> {
  const row = await database(env)
    .insert(serialBlocks)
    .values({ home })
    .returning({ block: serialBlocks.block })
    .get();
  return row.block;
}

/** The ledger that was given `block`, or undefined if no ledger was. */
export async function homeOfBlock(env: Env, block: number): Promise<string | undefined> {
  const row = await database(env)
    .select({ home: serialBlocks.home })
    .from(serialBlocks)
    .where(eq(serialBlocks.block, block))
    .get();
  return row?.home;
}

/** The ledgers given `blocks` (at most a statement's parameters), by block; a block no ledger was given is left out. */
export async function homesOfBlockList(env: Env, blocks: readonly number[]): Promise<Map<number, string>> {
  const rows = await database(env)
    .select({ block: serialBlocks.block, home: serialBlocks.home })
    .from(serialBlocks)
    .where(inArray(serialBlocks.block, [...blocks]))
    .all();
  return new Map(rows.map((r) => [r.block, r.home]));
}

export interface IndexedCommission {
  serial: number;
  serviceId: string;
  state: string;
  version: number;
}

/** Projects a commission's state; an older version than the one indexed changes nothing. */
export async function indexCommission(env: Env, row: IndexedCommission): Promise<void> {
  await database(env)
    .insert(commissionIndex)
    .values(row)
    .onConflictDoUpdate({
      target: commissionIndex.serial,
      set: { state: sql`excluded.state`, version: sql`excluded.version` },
      setWhere: sql`excluded.version > ${commissionIndex.version}`,
    })
    .run();
}

export async function pendingSerials(env: Env, serviceId: string): Promise<number[]> {
  const rows = await database(env)
    .select({ serial: commissionIndex.serial })
    .from(commissionIndex)
    .where(and(eq(commissionIndex.serviceId, serviceId), eq(commissionIndex.state, "pending")))
    .orderBy(asc(commissionIndex.serial))
    .all();
  return rows.map((r) => r.serial);
}
