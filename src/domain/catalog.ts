/** Product catalog rules, free of I/O. */

export const PRODUCT_KINDS = ["timed", "depletable", "per_object", "license", "caas"] as const;
export type ProductKind = (typeof PRODUCT_KINDS)[number];
export const DELIVERY_MODES = ["builtin", "syndicated"] as const;
export type DeliveryMode = (typeof DELIVERY_MODES)[number];

/** Aliases one product may have: every purchase and list filter looks names up among them. */
export const MAX_ALIASES = 20;

export interface Product {
  id: string;
  name: string;
  kind: ProductKind;
  unit: string;
  unitPriceMinor: number;
  currency: string;
  quotaResource: string;
  aliases: string[];
  delivery: DeliveryMode;
  vendorId: string | null;
}

/** Looks a product up by id or alias (`hdd` names `dssd`), so the canonical id is what is stored. */
export function findProduct(catalog: readonly Product[], name: string): Product | undefined {
  const wanted = name.toLowerCase();
  return catalog.find((p) => p.id === wanted) ?? catalog.find((p) => p.aliases.includes(wanted));
}

/**
 * Why product `id` cannot be known by `aliases` in `catalog`, if it cannot: each name (an id or
 * an alias) must name one product only, or the catalog would show one product under a name a
 * purchase resolves to another (`findProduct` takes an id first, then the first alias).
 */
export function nameClash(
  catalog: readonly Product[],
  id: string,
  aliases: readonly string[],
): string | null {
  for (const other of catalog) {
    if (other.id === id) continue;
    const taken = aliases.find((alias) => alias === other.id || other.aliases.includes(alias));
    if (taken !== undefined) {
      return taken === other.id
        ? `alias ${taken} is the id of product ${other.id}`
        : `alias ${taken} is product ${other.id}'s: take it off that product first`;
    }
    if (other.aliases.includes(id)) return `${id} is an alias of product ${other.id}`;
  }
  return null;
}

/** Depletable products are consumed, not rented: time parameters do not apply to them. */
export const isDepletable = (p: Pick<Product, "kind">) => p.kind === "depletable";

/** Per-object products (an IP, a VLAN) are bought one object per subscription. */
export const isPerObject = (p: Pick<Product, "kind">) => p.kind === "per_object";

/** CaaS clouds are started and stopped, and billed for the time they run. */
export const isRunnable = (p: Pick<Product, "kind">) => p.kind === "caas";

/**
 * The service that owns the resources products hold quota on (`stratus.*`): no partner's service
 * may take its name, so no service token can commission what subscriptions hold.
 */
export const STRATUS_SERVICE = "stratus";
