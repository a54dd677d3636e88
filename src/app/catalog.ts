import { primaryOf } from "../db/client";
import { listProducts } from "../db/products";
import { findProduct, type Product } from "../domain/catalog";
import { ttlCache } from "../domain/ttl-cache";

/**
 * The catalog as purchases and list filters read it, kept in isolate memory for 30 s: it is tiny,
 * changes rarely, and would otherwise be read from D1 on every purchase. A name the kept copy does
 * not know reads it again at once, so a product or alias added a moment ago is found at once; a
 * change to an existing product (its price, an alias moved) reaches other isolates within 30 s,
 * and the isolate that made it at once. It is read from the primary: a replica a write behind
 * would hand back, and have kept 30 s, the catalog as it was before a change this isolate made.
 */
const recentCatalog = ttlCache<Product[]>(30_000, 1);
const KEY = "catalog";

/** The catalog, knowing every one of `names` (ids or aliases) if any product is named so. */
export async function catalogKnowing(env: Env, names: readonly string[]): Promise<Product[]> {
  const kept = (await recentCatalog(KEY, () => listProducts(primaryOf(env)))) ?? [];
  if (names.every((name) => findProduct(kept, name))) return kept;
  recentCatalog.forget(KEY);
  return (await recentCatalog(KEY, () => listProducts(primaryOf(env)))) ?? [];
}

/** The product ids `names` (ids or aliases) stand for; an unknown name stays as it is and matches nothing. */
export async function productIdsNamed(env: Env, names: readonly string[]): Promise<string[]> {
  if (names.length === 0) return [];
  const catalog = await catalogKnowing(env, names);
  return names.map((name) => findProduct(catalog, name)?.id ?? name);
}

/** A product was created or changed here: this isolate reads the catalog again. */
export const catalogChanged = () => recentCatalog.forget(KEY);
