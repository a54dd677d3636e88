import { asc, eq } from "drizzle-orm";
import type { Product } from "../domain/catalog";
import { database } from "./client";
import { products } from "./schema";

type ProductRow = typeof products.$inferSelect;

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

export async function upsertProduct(env: Env, p: Product): Promise<Product> {
  const { id, ...rest } = p;
  const row = await database(env)
    .insert(products)
    .values(p)
    .onConflictDoUpdate({ target: products.id, set: rest })
    .returning()
    .get();
  return toProduct(row);
}

/** The whole catalog: small, and every purchase needs it to resolve names and aliases. */
export async function listProducts(env: Env): Promise<Product[]> {
  return (await database(env).select().from(products).orderBy(asc(products.id)).all()).map(toProduct);
}

export async function findProductById(env: Env, id: string): Promise<Product | undefined> {
  const row = await database(env).select().from(products).where(eq(products.id, id)).get();
  return row ? toProduct(row) : undefined;
}
