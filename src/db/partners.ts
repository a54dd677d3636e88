import { and, eq } from "drizzle-orm";
import { database } from "./client";
import { partners, type RateLimitTier, services } from "./schema";

export type Partner = typeof partners.$inferSelect;
export type Service = typeof services.$inferSelect;

/**
 * Partner `id`, in the `standard` rate-limit tier unless another is given; if it exists (a resumed
 * request), as it is.
 */
export async function createPartner(
  env: Env,
  id: string,
  name: string,
  rateLimit: RateLimitTier = "standard",
): Promise<Partner> {
  const created = await database(env)
    .insert(partners)
    .values({ id, name, rateLimit })
    .onConflictDoNothing()
    .returning()
    .get();
  const found = created ?? (await findPartner(env, id));
  if (!found) throw new Error(`partner ${id} neither inserted nor found`);
  return found;
}

/**
 * Undefined when there is no such partner, or (given `expected`, the partner an If-Match was
 * compared with) when its name or tier is no longer what was compared: the check is part of the
 * UPDATE, so a change in between is never lost. No changes reads it as it is.
 */
export async function updatePartner(
  env: Env,
  id: string,
  changes: Partial<Pick<Partner, "name" | "rateLimit">>,
  expected?: Pick<Partner, "name" | "rateLimit">,
): Promise<Partner | undefined> {
  if (Object.keys(changes).length === 0) return findPartner(env, id);
  const at =
    expected === undefined
      ? undefined
      : and(eq(partners.name, expected.name), eq(partners.rateLimit, expected.rateLimit));
  return database(env)
    .update(partners)
    .set(changes)
    .where(and(eq(partners.id, id), at))
    .returning()
    .get();
}

export async function findPartner(env: Env, id: string): Promise<Partner | undefined> {
  return database(env).select().from(partners).where(eq(partners.id, id)).get();
}

/**
 * Service `id`; if it exists (a resumed request), as it is. Null when another service has that
 * name (the partner's or another's: resources belong to a service by name).
 */
export async function createService(
  env: Env,
  id: string,
  partnerId: string,
  name: string,
): Promise<Service | null> {
  const row = await database(env)
    .insert(services)
    .values({ id, partnerId, name })
    .onConflictDoNothing()
    .returning()
    .get();
  return row ?? (await findService(env, id)) ?? null;
}

export async function findService(env: Env, id: string): Promise<Service | undefined> {
  return database(env).select().from(services).where(eq(services.id, id)).get();
}
