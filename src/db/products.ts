import { and, asc, eq, sql } from "drizzle-orm";
import type { Product } from "../domain/catalog";
import { AppError } from "../domain/errors";
import { database } from "./client";
import { operations, products, subscriptions } from "./schema";

type ProductRow = typeof products.$inferSelect;

/** A product with the version of its row, for If-Match. */
export type VersionedProduct = Product & { version: number };

const toProduct = (row: ProductRow): Product => ({
  id: row.id,
  name: row.name,
  kind: row.kind,
  unit: row.unit,
  unitPriceMinor: row.unitPriceMinor,
  currency: row.currency,
  quotaResource: row.quotaResource,
  aliases: row.aliases,
  delivery: row.delivery,
  vendorId: row.vendorId,
});

const versioned = (row: ProductRow): VersionedProduct => ({ ...toProduct(row), version: row.version });

/**
 * Whether product `id` was ever sold, or is being bought: a subscription of it exists (in the read
 * model), or a purchase naming it is running. A run marks its operation running before it reads
 * the product's vendor, and buys through the vendor it read: its subscriptions reach the read
 * model only later. (One still queued reads the vendor when it runs, and is refused if it moved.)
 * SQL, so the product's write can take it as its condition.
 */
const soldOrSelling = (id: string) => sql`(
  EXISTS (SELECT 1 FROM ${subscriptions} WHERE ${subscriptions.product} = ${id})
  OR EXISTS (
    SELECT 1 FROM ${operations}
    WHERE ${operations.kind} = 'purchase' AND ${operations.status} = 'running'
      AND EXISTS (SELECT 1 FROM json_each(${operations.payload}, '$.vendors') WHERE key = ${id})
  )
)`;

/** Whether product `id` was sold or is being bought (`soldOrSelling`). */
export async function productSoldOrSelling(env: Env, id: string): Promise<boolean> {
  const row = await database(env)
    .select({ yes: sql<number>`${soldOrSelling(id)}` })
    .from(sql`(SELECT 1)`)
    .get();
  return row?.yes === 1;
}

/** Where a syndicated product's events go and what signs them (`setSyndication`'s columns). */
export type Syndication = Partial<
  Pick<ProductRow, "endpoint" | "signingSecret" | "previousSecret" | "previousSecretExpiresAt">
>;

/**
 * Creates or updates product `p.id`, with `syndication` written in the same statement: a vendor
 * never gets the product without its own endpoint and secret, whatever dies after. With
 * `expectedVersion`, only updates it, at that version. Its vendor changes only while it is
 * neither sold nor being bought, checked in the same statement as the write: its buyers and
 * orders go to the vendor they were bought through. With `vendorWas` (the vendor it was read
 * with, when what `syndication` keeps, its endpoint or secret, was that vendor's), an existing row
 * is only updated while it still has that vendor. Undefined when it is not there at that version,
 * its vendor would change and may not, or it moved from `vendorWas`.
 */
export async function upsertProduct(
  env: Env,
  p: Product,
  expectedVersion?: number,
  syndication: Syndication = {},
  vendorWas?: string | null,
): Promise<VersionedProduct | undefined> {
  const { id, ...rest } = p;
  const set = { ...rest, ...syndication, version: sql`${products.version} + 1` };
  const stillWas = vendorWas === undefined ? sql`` : sql` AND ${products.vendorId} IS ${vendorWas}`;
  const vendorMayBe = sql`(${products.vendorId} IS ${p.vendorId} OR NOT ${soldOrSelling(id)})${stillWas}`;
  const write =
    expectedVersion === undefined
      ? database(env)
          .insert(products)
          .values({ ...p, ...syndication })
          .onConflictDoUpdate({ target: products.id, set, setWhere: vendorMayBe })
          .returning()
          .get()
      : database(env)
          .update(products)
          .set(set)
          .where(and(eq(products.id, id), eq(products.version, expectedVersion), vendorMayBe))
          .returning()
          .get();
  const row = await write.catch((error: unknown) => {
    // Migration 0018's triggers: a name another product took since the caller checked the catalog.
    if (isNameClash(error))
      throw new AppError("conflict", `a name of product ${id} was given to another product meanwhile`);
    throw error;
  });
  return row ? versioned(row) : undefined;
}

const isNameClash = (error: unknown): boolean =>
  error instanceof Error &&
  (error.message.includes("product name clash") || isNameClash((error as { cause?: unknown }).cause));

/** The whole catalog: small, and every purchase needs it to resolve names and aliases. */
export async function listProducts(env: Env): Promise<Product[]> {
  return (await database(env).select().from(products).orderBy(asc(products.id)).all()).map(toProduct);
}

export async function findProductById(env: Env, id: string): Promise<VersionedProduct | undefined> {
  const row = await database(env).select().from(products).where(eq(products.id, id)).get();
  return row ? versioned(row) : undefined;
}
