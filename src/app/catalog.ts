import { listProducts } from "../db/products";
import { findProduct, type Product } from "../domain/catalog";
import type { Env } from "../env";
import { ttlCache } from "../http/ttl-cache";

/**
 * The catalog as list filters read it, kept in isolate memory for 30 s: a filtered list needs it on
 * every request only to turn aliases into product ids. A name the kept copy does not know sends the
 * lookup to D1, so a product or alias added a moment ago is found at once; what the copy can delay
 * by up to 30 s is an alias moved to another product or removed.
 */
const recentCatalog = ttlCache<Product[]>(30_000, 1);

/** The product ids `names` (ids or aliases) stand for; an unknown name stays as it is and matches nothing. */
export async function productIdsNamed(env: Env, names: readonly string[]): Promise<string[]> {
  if (names.length === 0) return [];
  const kept = (await recentCatalog("catalog", () => listProducts(env))) ?? [];
  const catalog = names.every((name) => findProduct(kept, name)) ? kept : await listProducts(env);
  return names.map((name) => findProduct(catalog, name)?.id ?? name);
}
