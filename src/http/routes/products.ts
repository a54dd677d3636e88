import type * as v from "valibot";
import { catalogChanged } from "../../app/catalog";
import { choiceFor } from "../../app/intents";
import { findProductById, listProducts, productSoldOrSelling, upsertProduct } from "../../db/products";
import { findResource } from "../../db/resources";
import { findVendor } from "../../db/vendors";
import { syndicationOf } from "../../db/webhooks";
import { nameClash, type Product, STRATUS_SERVICE } from "../../domain/catalog";
import { AppError, badRequest, notFound } from "../../domain/errors";
import { currency, isKnownCurrency, parseDecimal } from "../../domain/money";
import { money } from "../../domain/subscriptions";
import { newSigningSecret } from "../../domain/webhooks";
import { NoParameters } from "../../schemas/pagination";
import { ProductListOut, ProductOut, ProductParams, PutProduct } from "../../schemas/products";
import { inEffect, type Matched, matched, preconditionFailed, tagged } from "../conditional";
import * as examples from "../examples";
import { wholeList } from "../pagination";
import { ETAG } from "../reply";
import { defineRoute } from "../route";

/** The catalog of products partners can order. */

const tag = "Products";

const productOut = (p: Product): v.InferOutput<typeof ProductOut> => ({
  id: p.id,
  name: p.name,
  kind: p.kind,
  unit: p.unit,
  unit_price: money(BigInt(p.unitPriceMinor), p.currency),
  currency: p.currency,
  quota_resource: p.quotaResource,
  aliases: p.aliases,
  delivery: p.delivery,
  vendor: p.vendorId,
});

/**
 * A PUT's If-Match. Without one the PUT creates or updates (a keyed retry: `firstAttemptsVersion`).
 * With one the product must exist (412 if not); a tag must also match it, and then its version is
 * the one the update must find.
 */
async function productVersionMatched(env: Env, request: Request, id: string) {
  if (!request.headers.has("if-match")) return firstAttemptsVersion(env, request, id);
  const current = await findProductById(env, id);
  if (!current) throw preconditionFailed();
  return matched(request, () => productOut(current), current.version);
}

/**
 * A keyed PUT without If-Match records the version its first attempt found. Its answer is never
 * kept (it may show a secret), so the same request again runs again: written as sent, it would
 * set back whatever another PUT changed since (a price, which every purchase from then on is
 * charged). A retry updates only at that version, as a conditional one does: the product moved
 * on, it answers as done when its change is in effect, else 409. Versions start at 1, so a
 * product the first attempt found absent and now there is compared with 0, which it never has.
 */
async function firstAttemptsVersion(
  env: Env,
  request: Request,
  id: string,
): Promise<Matched<number> | undefined> {
  if (!request.headers.has("idempotency-key")) return undefined;
  const choice = await choiceFor(request, async () =>
    JSON.stringify((await findProductById(env, id))?.version ?? null),
  );
  if (!choice.recalled) return undefined;
  const found = JSON.parse(choice.value) as number | null;
  if (found !== null) return { compared: found, recalled: true };
  return (await findProductById(env, id)) ? { compared: 0, recalled: true } : undefined;
}

/** The example product as a PUT sends it: what it answers, but the id, delivery and vendor. */
const { id: _id, delivery: _delivery, vendor: _vendor, ...productAsSent } = examples.product;

export const productRoutes = [
  defineRoute({
    method: "PUT",
    path: "/v1/products/{id}",
    secret: true,
    summary: "Create or update a product",
    description:
      "`unit_price` is in the currency's minor-unit precision at most (e.g. 2 decimals for EUR). The quota resource must be one of stratus's own (service `stratus`). A syndicated product needs a vendor and an endpoint (one already syndicated through the same vendor keeps its endpoint when the body leaves it out, as `GET` does not show it); the first time a product becomes syndicated, its signing secret is answered, once. With `If-Match` (an ETag of `GET /v1/products/{id}`, or `*`), only an existing product is updated, and only if it has not changed since: else 412. Each name names one product: an alias that is another product's id or alias, or an id that is another product's alias, answers 409 (to move an alias, take it off its product first).",
    tag,
    auth: ["operator"],
    params: ProductParams,
    body: PutProduct,
    bodyExample: productAsSent,
    ifMatch: true,
    responses: {
      200: { description: "The product", schema: ProductOut, headers: ETAG, example: examples.product },
    },
    errors: {
      conflict:
        "An alias, or the id, that names another product; or a new vendor for a product already sold, or whose purchase is running; or, kept syndicated, a vendor another write gave it since it was read; or, a keyed PUT sent again without If-Match, a change another write made since its first attempt",
    },
    async handle({ env, request, params, body }) {
      if (body.id !== undefined && body.id !== params.id) {
        throw badRequest(`id is not the product's id in the path, ${params.id}`, [
          { point: "/id", message: "must be the id in the path, or left out" },
        ]);
      }
      if (!isKnownCurrency(body.currency)) {
        throw badRequest("currency is not an ISO 4217 currency", [
          { point: "/currency", message: "must be an ISO 4217 currency code" },
        ]);
      }
      const minor = parseDecimal(body.unit_price, currency(body.currency));
      if (minor === null || minor > BigInt(Number.MAX_SAFE_INTEGER)) {
        throw badRequest("unit_price has more decimals than the currency's minor unit", [
          {
            point: "/unit_price",
            message: `at most ${currency(body.currency).exponent} decimals in ${body.currency}`,
          },
        ]);
      }
      const clash = nameClash(await listProducts(env), params.id, body.aliases);
      if (clash) throw new AppError("conflict", clash);
      const resource = await findResource(env, body.quota_resource);
      if (!resource) {
        throw badRequest("quota_resource is not registered", [
          { point: "/quota_resource", message: "is not a registered resource (PUT /v1/resources/{name})" },
        ]);
      }
      // A resource of a partner's service could be moved by that service's commissions under the
      // subscriptions that hold it: products hold quota only on stratus's own.
      if (resource.service !== STRATUS_SERVICE) {
        throw badRequest(`quota_resource belongs to service ${resource.service}`, [
          { point: "/quota_resource", message: `must be a resource of service "${STRATUS_SERVICE}"` },
        ]);
      }
      const syndicated = body.delivery === "syndicated";
      const before = await syndicationOf(env, params.id);
      // PUT takes the product as GET answers it, and GET does not show the endpoint (the operator
      // or the vendor sets it apart, `PUT …/endpoint`): a product already syndicated through this
      // vendor keeps its endpoint when the body leaves it out. A new vendor names its own.
      const keepsEndpoint =
        syndicated &&
        body.endpoint === undefined &&
        !!before?.endpoint &&
        !!body.vendor &&
        before.vendorId === body.vendor;
      if (syndicated && (!body.vendor || (!body.endpoint && !keepsEndpoint))) {
        throw badRequest("a syndicated product needs a vendor and an endpoint", [
          ...(body.vendor ? [] : [{ point: "/vendor", message: "is required when delivery is syndicated" }]),
          ...(body.endpoint || keepsEndpoint
            ? []
            : [{ point: "/endpoint", message: "is required when delivery is syndicated" }]),
        ]);
      }
      if (body.vendor && !(await findVendor(env, body.vendor))) {
        throw badRequest("vendor does not exist", [{ point: "/vendor", message: "no such vendor" }]);
      }
      const condition = await productVersionMatched(env, request, params.id);
      // A vendor reads the orders and buyers of its products' subscriptions: the vendor they were
      // sold through stays theirs, so a product once sold, or being bought, keeps its vendor (or
      // none). The write checks it again, in the same statement (`upsertProduct`).
      const vendorId = syndicated ? (body.vendor ?? null) : null;
      const vendorFixed = () =>
        new AppError(
          "conflict",
          `product ${params.id} has been sold ${before?.vendorId ? `through vendor ${before.vendorId}` : "without a vendor"}, or is being bought: its vendor cannot change; make a new product`,
          { fields: [{ point: "/vendor", message: "cannot change once the product has been sold" }] },
        );
      const vendorChanges = before !== undefined && before.vendorId !== vendorId;
      if (vendorChanges && (await productSoldOrSelling(env, params.id))) throw vendorFixed();
      // The signing secret is made when the product first becomes syndicated, and shown then only;
      // a new vendor gets a new one, the old dropped at once: the vendor it leaves could otherwise
      // sign events the new one would take for this API's. Written with the vendor, in one
      // statement: a request dying between the two left the new vendor's product pushing to the
      // old endpoint, signed with the old vendor's secret, and its retry showed no secret.
      const newVendor = syndicated && before?.signingSecret ? before.vendorId !== vendorId : false;
      const secret = !syndicated || (before?.signingSecret && !newVendor) ? null : newSigningSecret();
      const wanted: Product = {
        id: params.id,
        name: body.name,
        kind: body.kind,
        unit: body.unit,
        unitPriceMinor: Number(minor),
        currency: body.currency,
        quotaResource: body.quota_resource,
        aliases: body.aliases,
        delivery: body.delivery,
        vendorId,
      };
      const product = await upsertProduct(
        env,
        wanted,
        condition?.compared,
        syndicated
          ? {
              // Left out, the column is not written: an endpoint set meanwhile stays.
              ...(keepsEndpoint ? {} : { endpoint: body.endpoint ?? null }),
              ...(secret ? { signingSecret: secret } : {}),
              ...(newVendor ? { previousSecret: null, previousSecretExpiresAt: null, olderSecrets: [] } : {}),
            }
          : {},
        // What it keeps (its endpoint, its secret) is the vendor's it was read with: written only
        // while it has that vendor, not over another PUT that moved it meanwhile.
        syndicated && before ? before.vendorId : undefined,
      );
      if (!product) {
        // Not written: at another version than If-Match said, or sold (or bought) since the check.
        if (vendorChanges && (await productSoldOrSelling(env, params.id))) throw vendorFixed();
        // Moved on by this request's first attempt, if that is when it was compared and the
        // change is in effect: answered as done, its secret (if it made one) not shown again.
        const now = condition?.recalled ? await findProductById(env, params.id) : undefined;
        const stored = syndicated ? await syndicationOf(env, params.id) : undefined;
        if (
          now &&
          inEffect(now, wanted) &&
          (!syndicated || keepsEndpoint || stored?.endpoint === body.endpoint)
        ) {
          catalogChanged();
          return tagged(productOut(now));
        }
        // Moved to another vendor by another PUT since it was read (without If-Match to say so).
        if (!condition && before && stored && stored.vendorId !== before.vendorId) {
          throw new AppError(
            "conflict",
            `product ${params.id} moved to vendor ${stored.vendorId ?? "none"} meanwhile: read it again`,
            { fields: [{ point: "/vendor", message: "changed since the product was read" }] },
          );
        }
        if (!request.headers.has("if-match")) {
          throw new AppError(
            "conflict",
            `product ${params.id} was changed by another write since this request's first attempt: read it again`,
          );
        }
        throw preconditionFailed();
      }
      catalogChanged();
      if (!syndicated) return tagged(productOut(product));
      const shown = productOut(product);
      return tagged({ ...shown, ...(secret ? { signing_secret: secret } : {}) }, shown);
    },
  }),
  defineRoute({
    method: "GET",
    path: "/v1/products",
    summary: "List products",
    description: "The whole catalog, by id. It takes no query parameter: any one answers 400.",
    tag,
    auth: ["operator", "partner"],
    query: NoParameters,
    responses: {
      200: { description: "Products", schema: ProductListOut, example: wholeList([examples.product]) },
    },
    async handle({ env }) {
      return { status: 200, body: wholeList((await listProducts(env)).map(productOut)) };
    },
  }),
  defineRoute({
    method: "GET",
    path: "/v1/products/{id}",
    summary: "Read a product",
    description: "One product of the catalog, by id.",
    tag,
    auth: ["operator", "partner"],
    params: ProductParams,
    responses: {
      200: { description: "The product", schema: ProductOut, headers: ETAG, example: examples.product },
    },
    async handle({ env, params }) {
      const product = await findProductById(env, params.id);
      if (!product) throw notFound(`product ${params.id} does not exist`);
      return tagged(productOut(product));
    },
  }),
];
