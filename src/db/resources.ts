import { asc, eq } from "drizzle-orm";
import { database } from "./client";
import { resources } from "./schema";

export type Resource = typeof resources.$inferSelect;
export type NewResource = typeof resources.$inferInsert;

/**
 * Registers a resource, or updates its description if it exists: registration is idempotent. A
 * registered resource keeps its service, checked in the statement that writes: undefined when it
 * is registered to another service (a check read before it may have come from a replica behind).
 */
export async function upsertResource(env: Env, input: NewResource): Promise<Resource | undefined> {
  const { name, ...rest } = input;
  return database(env)
    .insert(resources)
    .values(input)
    .onConflictDoUpdate({ target: resources.name, set: rest, setWhere: eq(resources.service, input.service) })
    .returning()
    .get();
}

export async function listResources(env: Env): Promise<Resource[]> {
  return database(env).select().from(resources).orderBy(asc(resources.name)).all();
}

export async function findResource(env: Env, name: string): Promise<Resource | undefined> {
  return database(env).select().from(resources).where(eq(resources.name, name)).get();
}

export async function resourceNamesOfService(env: Env, service: string): Promise<Set<string>> {
  const rows = await database(env)
    .select({ name: resources.name })
    .from(resources)
    .where(eq(resources.service, service))
    .all();
  return new Set(rows.map((r) => r.name));
}
