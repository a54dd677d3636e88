import { and, asc, eq, sql } from "drizzle-orm";
import type { Product } from "../domain/catalog";
import { database } from "./client";
import { products } from "./schema";

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
 * Creates or updates product `p.id`. With `expectedVersion`, only updates it, at that version:
 * undefined when it is not there at that version.
 */
export async function upsertProduct(
  env: Env,
  p: Product,
  expectedVersion?: number,
): Promise<VersionedProduct | undefined> {
  const { id, ...rest } = p;
  const set = { ...rest, version: sql`${products.version} + 1` };
  const row =
    expectedVersion === undefined
      ? await database(env)
          .insert(products)
          .values(p)
          .onConflictDoUpdate({ target: products.id, set })
          .returning()
          .get()
      : await database(env)
          .update(products)
          .set(set)
          .where(and(eq(products.id, id), eq(products.version, expectedVersion)))
          .returning()
          .get();
  return row ? versioned(row) : undefined;
}

/** The whole catalog: small, and every purchase needs it to resolve names and aliases. */
export async function listProducts(env: Env): Promise<Product[]> {
  return (await database(env).select().from(products).orderBy(asc(products.id)).all()).map(toProduct);
}

export async function findProductById(env: Env, id: string): Promise<VersionedProduct | undefined> {
  const row = await database(env).select().from(products).where(eq(products.id, id)).get();
  return row ? versioned(row) : undefined;
}
