import { eq } from "drizzle-orm";
import { uuidv7 } from "../domain/ids";
import type { Env } from "../env";
import { database } from "./client";
import { partners, services } from "./schema";

export type Partner = typeof partners.$inferSelect;
export type Service = typeof services.$inferSelect;

export async function createPartner(env: Env, name: string): Promise<Partner> {
  return database(env).insert(partners).values({ id: uuidv7(), name }).returning().get();
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
