import { and, eq } from "drizzle-orm";
import { database } from "./client";
import { products, vendors } from "./schema";

export type Vendor = typeof vendors.$inferSelect;

/** Vendor `id`; if it exists (a resumed request), as it is. */
export async function createVendor(env: Env, id: string, name: string): Promise<Vendor> {
  const created = await database(env)
    .insert(vendors)
    .values({ id, name })
    .onConflictDoNothing()
    .returning()
    .get();
  const found = created ?? (await findVendor(env, id));
  if (!found) throw new Error(`vendor ${id} neither inserted nor found`);
  return found;
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
  /** Only while the product is still this vendor's: it may have been given to another since it was read. */
  ofVendor?: string,
): Promise<boolean> {
  const mine = ofVendor === undefined ? undefined : eq(products.vendorId, ofVendor);
  const row = await database(env)
    .update(products)
    .set(changes)
    .where(and(eq(products.id, productId), mine))
    .returning({ id: products.id })
    .get();
  return row !== undefined;
}
