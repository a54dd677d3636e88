import { and, eq, sql } from "drizzle-orm";
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

/** Sets where a syndicated product's events go (`endpoint`). */
export async function setSyndication(
  env: Env,
  productId: string,
  changes: { endpoint: string },
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

/**
 * Gives product `productId` the signing secret `secret`; the one it replaces, whatever it is by
 * then (read in the same statement: a new vendor's, should the product have changed vendor since
 * the caller read it), signs beside it until `expiresAt`. The previous secret's expiry, or null
 * when there was none; undefined when the product is not there (or no longer `ofVendor`'s).
 */
export async function rotateSigningSecret(
  env: Env,
  productId: string,
  secret: string,
  expiresAt: string,
  ofVendor?: string,
  /**
   * `expiresAt` is an earlier attempt's of the same rotation (a keyed retry): if that attempt
   * rotated already (the previous secret expires then), only the new secret is replaced, and the
   * previous one stays the one from before it, which the vendor has, not the one it never saw.
   */
  again = false,
): Promise<{ previousSecretExpiresAt: string | null } | undefined> {
  const mine = ofVendor === undefined ? undefined : eq(products.vendorId, ofVendor);
  const rotated = again
    ? sql`${products.previousSecretExpiresAt} IS NOT NULL AND ${products.previousSecretExpiresAt} = ${expiresAt}`
    : sql`0`;
  return database(env)
    .update(products)
    .set({
      signingSecret: secret,
      previousSecret: sql`CASE WHEN ${rotated} THEN ${products.previousSecret} ELSE ${products.signingSecret} END`,
      previousSecretExpiresAt: sql`CASE WHEN ${rotated} THEN ${products.previousSecretExpiresAt} WHEN ${products.signingSecret} IS NULL THEN NULL ELSE ${expiresAt} END`,
    })
    .where(and(eq(products.id, productId), mine))
    .returning({ previousSecretExpiresAt: products.previousSecretExpiresAt })
    .get();
}
