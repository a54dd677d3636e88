import { eq } from "drizzle-orm";
import { uuidv7 } from "../domain/ids";
import type { Env } from "../env";
import { database } from "./client";
import { partners, type RateLimitTier, services } from "./schema";

export type Partner = typeof partners.$inferSelect;
export type Service = typeof services.$inferSelect;

/** A new partner, in the `standard` rate-limit tier unless another is given. */
export async function createPartner(
  env: Env,
  name: string,
  rateLimit: RateLimitTier = "standard",
): Promise<Partner> {
  return database(env).insert(partners).values({ id: uuidv7(), name, rateLimit }).returning().get();
}

/** Undefined when there is no such partner; no changes reads it as it is. */
export async function updatePartner(
  env: Env,
  id: string,
  changes: Partial<Pick<Partner, "name" | "rateLimit">>,
): Promise<Partner | undefined> {
  if (Object.keys(changes).length === 0) return findPartner(env, id);
  return database(env).update(partners).set(changes).where(eq(partners.id, id)).returning().get();
}

export async function findPartner(env: Env, id: string): Promise<Partner | undefined> {
  return database(env).select().from(partners).where(eq(partners.id, id)).get();
}

/** Null when the partner already has a service of that name. */
export async function createService(env: Env, partnerId: string, name: string): Promise<Service | null> {
  const row = await database(env)
    .insert(services)
    .values({ id: uuidv7(), partnerId, name })
    .onConflictDoNothing()
    .returning()
    .get();
  return row ?? null;
}

export async function findService(env: Env, id: string): Promise<Service | undefined> {
  return database(env).select().from(services).where(eq(services.id, id)).get();
}
