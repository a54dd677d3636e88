import * as v from "valibot";
import { DELIVERY_MODES, MAX_ALIASES, PRODUCT_KINDS } from "../domain/catalog";
import { Name, Slug, Uuid } from "./common";
import { wholeListMeta } from "./pagination";
import { WebhookEndpoint } from "./syndication";

const ProductId = v.pipe(
  v.string(),
  v.regex(/^[a-z0-9][a-z0-9_.-]{0,63}$/, "must be a lower-case product id"),
);

export const ProductParams = v.object({ id: ProductId });

/**
 * A member it does not read answers 400 naming it: a misspelt `delivry` would otherwise leave a
 * syndicated product built in, its vendor never told of a sale. `id` may come along, as a read
 * answers it, when it is the path's.
 */
export const PutProduct = v.strictObject(
  {
    id: v.optional(ProductId),
    name: Name,
    kind: v.picklist(PRODUCT_KINDS, `must be one of ${PRODUCT_KINDS.join(", ")}`),
    unit: v.pipe(v.string(), v.minLength(1), v.maxLength(32)),
    unit_price: v.pipe(
      v.string('must be a decimal string, e.g. "0.05" per unit and hour'),
      v.regex(/^\d{1,12}(\.\d{1,8})?$/, "must be a non-negative decimal string"),
      v.description(
        "Per unit and hour (per unit consumed for depletables), a decimal string with at most the currency's minor-unit decimals: 2 for EUR, 0 for JPY, 3 for KWD.",
      ),
    ),
    currency: v.pipe(
      v.string(),
      v.regex(/^[A-Z]{3}$/, "must be an ISO 4217 code"),
      v.description(
        "An ISO 4217 code, three capital letters; its minor unit decides the decimals of prices.",
      ),
    ),
    quota_resource: Slug,
    aliases: v.optional(
      v.pipe(
        v.array(v.pipe(v.string(), v.regex(/^[a-z0-9][a-z0-9_.-]{0,63}$/)), "must be a list of aliases"),
        v.maxLength(MAX_ALIASES, `at most ${MAX_ALIASES} aliases`),
      ),
      [],
    ),
    delivery: v.optional(v.picklist(DELIVERY_MODES), "builtin"),
    vendor: v.optional(v.nullable(v.pipe(v.string(), v.uuid("must be a vendor id")))),
    endpoint: v.optional(WebhookEndpoint),
  },
  "not a member of a product: id, name, kind, unit, unit_price, currency, quota_resource, aliases, delivery, vendor and endpoint are",
);

export const ProductOut = v.object({
  id: v.string(),
  name: v.string(),
  kind: v.picklist(PRODUCT_KINDS),
  unit: v.string(),
  unit_price: v.pipe(v.string(), v.description("Per unit and hour; per unit consumed for depletables")),
  currency: v.string(),
  quota_resource: v.string(),
  aliases: v.array(v.string()),
  delivery: v.picklist(DELIVERY_MODES),
  vendor: v.nullable(Uuid),
  signing_secret: v.optional(
    v.pipe(
      v.string(),
      v.description("Only when the product first becomes syndicated, or its vendor changes: shown once"),
    ),
  ),
});

export const ProductListOut = v.object({ objects: v.array(ProductOut), meta: wholeListMeta });
