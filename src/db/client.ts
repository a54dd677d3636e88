import { type DrizzleD1Database, drizzle } from "drizzle-orm/d1";
import type { Env } from "../env";

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
