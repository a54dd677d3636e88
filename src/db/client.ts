import { count, fillPlaceholders, type SQL, sql } from "drizzle-orm";
import type { BatchItem } from "drizzle-orm/batch";
import { type DrizzleD1Database, drizzle } from "drizzle-orm/d1";
import type { SQLiteTable } from "drizzle-orm/sqlite-core";

/** One drizzle instance per D1 binding, built once: queries only use the SQL builder. */
const instances = new WeakMap<D1Database, DrizzleD1Database>();

export function database(env: Env): DrizzleD1Database {
  let db = instances.get(env.DB);
  if (!db) {
    db = drizzle(env.DB);
    instances.set(env.DB, db);
  }
  return db;
}

export type Database = ReturnType<typeof database>;

/** Where a request's env (http/d1-session.ts) keeps the way to its primary env. */
export const PRIMARY = Symbol("the request's env on the primary");

/**
 * The Worker's own env under a request's, whose `DB` goes to the primary: what must never be read
 * from a replica a write behind and then kept (a credential just revoked, a product just changed).
 * Outside a request (queues, cron, objects) the env already is the primary's.
 */
export function primaryOf(env: Env): Env {
  const primary = (env as Env & { [PRIMARY]?: () => Env })[PRIMARY];
  return primary ? primary() : env;
}

/** D1 binds at most 100 parameters to one statement; more fails the whole query. */
export const D1_MAX_PARAMETERS = 100;

/**
 * `values` without repeats, in chunks that each fit one statement next to the `others`
 * parameters that statement binds besides them: for `IN (…)` lists of any length.
 */
export function parameterChunks<T>(values: Iterable<T>, others: number): T[][] {
  const size = D1_MAX_PARAMETERS - others;
  if (size < 1) throw new RangeError(`a statement with ${others} other parameters has no room for a list`);
  const distinct = [...new Set(values)];
  const chunks: T[][] = [];
  for (let i = 0; i < distinct.length; i += size) chunks.push(distinct.slice(i, i + size));
  return chunks;
}

/** `rows` in chunks that each fit one multi-row statement binding `perRow` parameters a row. */
export function rowChunks<T>(rows: readonly T[], perRow: number): T[][] {
  const size = Math.floor(D1_MAX_PARAMETERS / perRow);
  if (size < 1) throw new RangeError(`a row of ${perRow} parameters does not fit one statement`);
  const chunks: T[][] = [];
  for (let i = 0; i < rows.length; i += size) chunks.push(rows.slice(i, i + size));
  return chunks;
}

/**
 * A statement drizzle builds once, with `sql.placeholder`s, then bound on each use as drizzle's
 * prepared statements bind theirs (each value encoded as its column says): for the statements of
 * the hottest writes, which go into D1 batches of raw statements.
 */
export function builtOnce(build: (db: Database) => { toSQL(): { sql: string; params: unknown[] } }) {
  let query: { sql: string; params: unknown[] } | undefined;
  return (env: Env, values: Record<string, unknown> = {}): D1PreparedStatement => {
    query ??= build(database(env)).toSQL();
    return env.DB.prepare(query.sql).bind(...fillPlaceholders(query.params, values));
  };
}

/** A query drizzle built, as a D1 statement of its own: for a batch that mixes it with `builtOnce`'s. */
export function statementOf(
  env: Env,
  query: { toSQL(): { sql: string; params: unknown[] } },
): D1PreparedStatement {
  const { sql, params } = query.toSQL();
  return env.DB.prepare(sql).bind(...params);
}

/**
 * A page of a list and how many rows the whole list has (`where` on `table`), read in one D1
 * batch: D1 runs a batch as one transaction, so `total_count` counts the same snapshot the page
 * was read from (two statements could each see a different concurrent write), in one round trip.
 */
export async function pageAndTotal<R>(
  env: Env,
  page: BatchItem<"sqlite"> & PromiseLike<R[]>,
  table: SQLiteTable,
  where: SQL | undefined,
): Promise<{ rows: R[]; total: number }> {
  const db = database(env);
  const [rows, totals] = await db.batch([page, db.select({ total: count() }).from(table).where(where)]);
  return { rows: rows as R[], total: totals[0]?.total ?? 0 };
}

/**
 * The rows one statement of a cleanup deletes at most, and the statements one cleanup makes a run
 * (`deleteChunked`): D1 stops a query at 30 s, so a backlog of expired rows (the cron failing a
 * while) deleted in one statement would fail every run, and only grow. The rest go in the runs after.
 */
export const ROWS_PER_DELETE = 1_000;
export const DELETES_PER_RUN = 25;

/**
 * Deletes the rows of `table` that `where` matches, `ROWS_PER_DELETE` a statement and
 * `DELETES_PER_RUN` statements at most: answers how many it deleted (the rest are left for the
 * next run). Each statement is whole on its own, so a run that fails half-way keeps what it did.
 */
export async function deleteChunked(env: Env, table: SQLiteTable, where: SQL | undefined): Promise<number> {
  const db = database(env);
  let deleted = 0;
  for (let i = 0; i < DELETES_PER_RUN; i++) {
    const chunk = db.select({ rowid: sql`rowid` }).from(table).where(where).limit(ROWS_PER_DELETE);
    const { meta } = await db.delete(table).where(sql`rowid IN ${chunk}`).run();
    deleted += meta.changes;
    if (meta.changes < ROWS_PER_DELETE) break;
  }
  return deleted;
}
