import { eq } from "drizzle-orm";
import { uuidv7 } from "../domain/ids";
import type { Env } from "../env";
import { database } from "./client";
import { products, vendors } from "./schema";

export type Vendor = typeof vendors.$inferSelect;

export async function createVendor(env: Env, name: string): Promise<Vendor> {
  return database(env).insert(vendors).values({ id: uuidv7(), name }).returning().get();
}

export async function findVendor(env: Env, id: string): Promise<Vendor | undefined> {
  return database(env).select().from(vendors).where(eq(vendors.id, id)).get();
}

/** Sets where a syndicated product's events go, and who sells it. */
export async function setSyndication(
  env: Env,
  productId: string,
  changes: {
    vendorId?: string;
    endpoint?: string;
    signingSecret?: string;
    previousSecret?: string | null;
    previousSecretExpiresAt?: string | null;
  },
): Promise<void> {
  await database(env).update(products).set(changes).where(eq(products.id, productId)).run();
}
