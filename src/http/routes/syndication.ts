import * as v from "valibot";
import { newIdFor } from "../../app/intents";
import { issueCredential } from "../../db/credentials";
import { DELIVERY_STATUSES } from "../../db/schema";
import { createVendor, findVendor, setSyndication, type Vendor } from "../../db/vendors";
import {
  attemptsOf,
  type Delivery,
  findDelivery,
  listDeliveries,
  requeueDelivery,
  syndicationOf,
} from "../../db/webhooks";
import { newSigningSecret } from "../../domain/webhooks";
import type { Env } from "../../env";
import { IdParams, IssuedCredentialOut, KeyRequest } from "../../schemas/common";
import { Pagination, pageMeta } from "../../schemas/pagination";
import { ProductParams } from "../../schemas/products";
import type { Principal } from "../auth";
import { taggedJson } from "../conditional";
import { AppError, notFound } from "../errors";
import { decodeCursor, toPage } from "../pagination";
import { defineRoute } from "../route";

/** Vendors, their syndication endpoints and signing secrets, and the webhook deliveries to them. */

const tag = "Syndication";

export const Endpoint = v.pipe(
  v.string("must be an http(s) URL"),
  v.url("must be an http(s) URL"),
  v.regex(/^https?:\/\//i, "must be an http(s) URL"),
  v.maxLength(2048),
);

const VendorOut = v.object({ id: v.string(), name: v.string(), created_at: v.string() });
const vendorOut = (vendor: Vendor): v.InferOutput<typeof VendorOut> => ({
  id: vendor.id,
  name: vendor.name,
  created_at: vendor.createdAt,
});
const SecretOut = v.object({
  product: v.string(),
  signing_secret: v.pipe(
    v.string(),
    v.description("Standard Webhooks secret (whsec_…). Shown only in this response."),
  ),
  previous_secret_expires_at: v.nullable(v.string()),
});

const DeliveryOut = v.object({
  id: v.string(),
  vendor: v.string(),
  product: v.string(),
  subscription: v.string(),
  type: v.picklist(["CREATED", "MODIFIED", "DELETED"]),
  sequence: v.number(),
  status: v.picklist(DELIVERY_STATUSES),
  attempts: v.number(),
  next_attempt_at: v.nullable(v.string()),
  last_status: v.nullable(v.number()),
  last_error: v.nullable(v.string()),
  created_at: v.string(),
  delivered_at: v.nullable(v.string()),
});

const deliveryOut = (d: Delivery): v.InferOutput<typeof DeliveryOut> => ({
  id: d.id,
  vendor: d.vendorId,
  product: d.product,
  subscription: d.subscriptionId,
  type: d.type,
  sequence: d.sequence,
  status: d.status,
  attempts: d.attempts,
  next_attempt_at: d.nextAttemptAt,
  last_status: d.lastStatus,
  last_error: d.lastError,
  created_at: d.createdAt,
  delivered_at: d.deliveredAt,
});

/** Operators see every delivery; a vendor only its own, and others' do not exist. */
const vendorScope = (p: Principal) => (p.role === "operator" ? null : (p.subjectId ?? ""));

/** The product's syndication, if the caller may manage it: operators any, a vendor its own. */
async function manageable(env: Env, principal: Principal, productId: string) {
  const target = await syndicationOf(env, productId);
  if (!target || (principal.role === "vendor" && target.vendorId !== principal.subjectId)) {
    throw notFound(`product ${productId} does not exist`);
  }
  if (!target.vendorId)
    throw new AppError("conflict", `product ${productId} is not delivered by syndication`);
  return target;
}

const ROTATION_GRACE_MS = 24 * 3_600_000;

export const syndicationRoutes = [
  defineRoute({
    method: "POST",
    path: "/v1/vendors",
    summary: "Create a vendor",
    tag,
    auth: ["operator"],
    body: v.object({ name: v.pipe(v.string(), v.trim(), v.minLength(1), v.maxLength(200)) }),
    responses: { 201: { description: "Created", schema: VendorOut } },
    async handle({ env, request, body }) {
      const vendor = await createVendor(env, await newIdFor(request), body.name);
      return Response.json(vendorOut(vendor), {
        status: 201,
        headers: { location: `/v1/vendors/${vendor.id}` },
      });
    },
  }),
  defineRoute({
    method: "GET",
    path: "/v1/vendors/{id}",
    summary: "Read a vendor",
    tag,
    auth: ["operator"],
    params: IdParams,
    responses: {
      200: { description: "The vendor", schema: VendorOut },
      404: { description: "No such vendor" },
    },
    async handle({ env, params }) {
      const vendor = await findVendor(env, params.id);
      if (!vendor) throw notFound(`vendor ${params.id} does not exist`);
      return taggedJson(vendorOut(vendor));
    },
  }),
  defineRoute({
    method: "POST",
    path: "/v1/vendors/{id}/tokens",
    summary: "Issue a vendor token (CMW-Auth-Token of the vendor API; shown once)",
    tag,
    auth: ["operator"],
    params: IdParams,
    body: KeyRequest,
    responses: {
      201: { description: "The token", schema: IssuedCredentialOut },
      404: { description: "No such vendor" },
    },
    async handle({ env, request, params, body }) {
      if (!(await findVendor(env, params.id))) throw notFound(`vendor ${params.id} does not exist`);
      const token = await issueCredential(env, {
        id: await newIdFor(request),
        role: "vendor",
        partnerId: null,
        subjectId: params.id,
        label: body.label ?? null,
      });
      return Response.json(token, { status: 201 });
    },
  }),
  defineRoute({
    method: "PUT",
    path: "/v1/products/{id}/endpoint",
    summary: "Set a syndicated product's endpoint (operator, or its vendor)",
    tag,
    auth: ["operator", "vendor"],
    params: ProductParams,
    body: v.object({ endpoint: Endpoint }),
    responses: {
      200: { description: "Set", schema: v.object({ product: v.string(), endpoint: v.string() }) },
    },
    async handle({ env, principal, params, body }) {
      await manageable(env, principal, params.id);
      await setSyndication(env, params.id, { endpoint: body.endpoint });
      return Response.json({ product: params.id, endpoint: body.endpoint });
    },
  }),
  defineRoute({
    method: "POST",
    path: "/v1/products/{id}/signing-secret",
    summary: "Rotate a syndicated product's signing secret (operator, or its vendor)",
    description:
      "The new secret is shown once. For 24 hours deliveries carry signatures with both the new and the previous secret.",
    tag,
    auth: ["operator", "vendor"],
    params: ProductParams,
    responses: { 200: { description: "The new secret", schema: SecretOut } },
    async handle({ env, principal, params }) {
      const target = await manageable(env, principal, params.id);
      const secret = newSigningSecret();
      const expires = new Date(Date.now() + ROTATION_GRACE_MS).toISOString();
      await setSyndication(env, params.id, {
        signingSecret: secret,
        previousSecret: target.signingSecret,
        previousSecretExpiresAt: target.signingSecret ? expires : null,
      });
      return Response.json({
        product: params.id,
        signing_secret: secret,
        previous_secret_expires_at: target.signingSecret ? expires : null,
      });
    },
  }),
  defineRoute({
    method: "GET",
    path: "/v1/webhooks/deliveries",
    summary: "List webhook deliveries (operator: all; vendor: its own)",
    tag,
    auth: ["operator", "vendor"],
    query: v.object({ ...Pagination.entries, status: v.optional(v.picklist(DELIVERY_STATUSES)) }),
    responses: {
      200: { description: "A page", schema: v.object({ objects: v.array(DeliveryOut), meta: pageMeta }) },
    },
    async handle({ env, principal, query }) {
      const rows = await listDeliveries(env, {
        vendorId: vendorScope(principal),
        status: query.status,
        after: decodeCursor(query.cursor),
        limit: query.limit,
      });
      return Response.json(toPage(rows, query.limit, (d) => d.id, deliveryOut));
    },
  }),
  defineRoute({
    method: "GET",
    path: "/v1/webhooks/deliveries/{id}",
    summary: "One delivery, with its attempts and its payload",
    tag,
    auth: ["operator", "vendor"],
    params: v.object({ id: v.pipe(v.string(), v.regex(/^msg_[0-9a-f]{32}$/)) }),
    responses: { 200: { description: "The delivery" }, 404: { description: "Not found" } },
    async handle({ env, principal, params }) {
      const d = await findDelivery(env, params.id, vendorScope(principal));
      if (!d) throw notFound(`delivery ${params.id} does not exist`);
      const attempts = await attemptsOf(env, d.id);
      return taggedJson({
        ...deliveryOut(d),
        payload: JSON.parse(d.payload),
        attempts: attempts.map((a) => ({
          attempt: a.attempt,
          at: a.at,
          status: a.status,
          error: a.error,
          duration_ms: a.durationMs,
        })),
      });
    },
  }),
  defineRoute({
    method: "POST",
    path: "/v1/webhooks/deliveries/{id}/redeliver",
    summary: "Deliver a dead or delivered event again (same webhook-id; the retry schedule starts over)",
    tag,
    auth: ["operator", "vendor"],
    params: v.object({ id: v.pipe(v.string(), v.regex(/^msg_[0-9a-f]{32}$/)) }),
    responses: {
      202: { description: "Queued", schema: DeliveryOut },
      404: { description: "Not found" },
      409: { description: "Still pending" },
    },
    async handle({ env, principal, params }) {
      const d = await findDelivery(env, params.id, vendorScope(principal));
      if (!d) throw notFound(`delivery ${params.id} does not exist`);
      const requeued = await requeueDelivery(env, d.id);
      if (!requeued) throw new AppError("conflict", `delivery ${d.id} is still pending`);
      await env.WEBHOOKS.send({ deliveryId: d.id });
      return Response.json(deliveryOut(requeued), { status: 202 });
    },
  }),
];
