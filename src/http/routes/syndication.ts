import * as v from "valibot";
import { choiceFor, newIdFor } from "../../app/intents";
import { redeliver } from "../../app/webhooks";
import type { Principal } from "../../db/credentials";
import { createVendor, findVendor, rotateSigningSecret, setSyndication, type Vendor } from "../../db/vendors";
import {
  attemptsOf,
  backlog,
  type Delivery,
  findDelivery,
  listDeliveries,
  syndicationOf,
} from "../../db/webhooks";
import { AppError, notFound } from "../../domain/errors";
import { MAX_GRACE_SECRETS, newSigningSecret } from "../../domain/webhooks";
import { IdParams, IssuedCredentialOut, KeyRequest } from "../../schemas/common";
import { ProductParams } from "../../schemas/products";
import {
  CreateVendor,
  DeliveriesQuery,
  DeliveryDetailOut,
  DeliveryId,
  DeliveryOut,
  DeliveryPageOut,
  DeliveryParams,
  EndpointOut,
  EndpointRequest,
  type EventOut,
  SecretOut,
  VendorOut,
} from "../../schemas/syndication";
import { issueAnew } from "../auth";
import { tagged } from "../conditional";
import * as examples from "../examples";
import { type PageWindow, pagedAnswer, pageWindow, toPage } from "../pagination";
import { ETAG, LOCATION } from "../reply";
import { defineRoute } from "../route";

/** Vendors, their syndication endpoints and signing secrets, and the webhook deliveries to them. */

const tag = "Syndication";

const vendorOut = (vendor: Vendor): v.InferOutput<typeof VendorOut> => ({
  id: vendor.id,
  name: vendor.name,
  created_at: vendor.createdAt,
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

/** A vendor changes a product only while it is still the product's vendor, checked as it writes. */
const vendorGuard = (principal: Principal) =>
  principal.role === "vendor" ? (principal.subjectId ?? "") : undefined;

const ROTATION_GRACE_MS = 24 * 3_600_000;

export const syndicationRoutes = [
  defineRoute({
    method: "POST",
    path: "/v1/vendors",
    summary: "Create a vendor",
    description: "A third party that provisions syndicated products and reads them through the vendor API.",
    tag,
    auth: ["operator"],
    body: CreateVendor,
    bodyExample: { name: "Demo Vendor" },
    responses: {
      201: { description: "Created", schema: VendorOut, headers: LOCATION, example: examples.vendor },
    },
    async handle({ env, request, body }) {
      const vendor = await createVendor(env, await newIdFor(request), body.name);
      return { status: 201, body: vendorOut(vendor), headers: { Location: `/v1/vendors/${vendor.id}` } };
    },
  }),
  defineRoute({
    method: "GET",
    path: "/v1/vendors/{id}",
    summary: "Read a vendor",
    description: "What `POST /v1/vendors` answered, found again (its `Location`).",
    tag,
    auth: ["operator"],
    params: IdParams,
    responses: {
      200: { description: "The vendor", schema: VendorOut, headers: ETAG, example: examples.vendor },
    },
    async handle({ env, params }) {
      const vendor = await findVendor(env, params.id);
      if (!vendor) throw notFound(`vendor ${params.id} does not exist`);
      return tagged(vendorOut(vendor));
    },
  }),
  defineRoute({
    method: "POST",
    path: "/v1/vendors/{id}/tokens",
    secret: true,
    summary: "Issue a vendor token",
    description:
      "The vendor's `CMW-Auth-Token` for the vendor API (and its `X-Api-Key` for its deliveries and products under /v1); shown once, in this answer.",
    tag,
    auth: ["operator"],
    params: IdParams,
    body: KeyRequest,
    bodyExample: { label: "provisioning" },
    responses: {
      201: {
        description: "The token",
        schema: IssuedCredentialOut,
        headers: LOCATION,
        example: examples.credentialOf("vendor"),
      },
    },
    async handle({ env, request, params, body }) {
      if (!(await findVendor(env, params.id))) throw notFound(`vendor ${params.id} does not exist`);
      const token = await issueAnew(env, {
        id: await newIdFor(request),
        role: "vendor",
        partnerId: null,
        subjectId: params.id,
        label: body.label ?? null,
      });
      return { status: 201, body: token, headers: { Location: `/v1/vendors/${params.id}` } };
    },
  }),
  defineRoute({
    method: "PUT",
    path: "/v1/products/{id}/endpoint",
    summary: "Set a syndicated product's endpoint",
    description: "The operator, or the product's vendor: where its events are posted from now on.",
    tag,
    auth: ["operator", "vendor"],
    params: ProductParams,
    body: EndpointRequest,
    bodyExample: { endpoint: "https://backup.example.com/stratus/events" },
    responses: {
      200: {
        description: "Set",
        schema: EndpointOut,
        example: { product: "backup", endpoint: "https://backup.example.com/stratus/events" },
      },
    },
    errors: { conflict: "The product is not delivered by syndication" },
    async handle({ env, principal, params, body }) {
      await manageable(env, principal, params.id);
      if (!(await setSyndication(env, params.id, { endpoint: body.endpoint }, vendorGuard(principal))))
        throw notFound(`product ${params.id} does not exist`);
      return { status: 200, body: { product: params.id, endpoint: body.endpoint } };
    },
  }),
  defineRoute({
    method: "POST",
    path: "/v1/products/{id}/signing-secret",
    secret: true,
    summary: "Rotate a syndicated product's signing secret",
    description: `The operator, or the product's vendor. The new secret is shown once. Each secret a rotation replaces signs beside the new one for 24 hours, however many rotations follow within them; while ${MAX_GRACE_SECRETS} replaced secrets still sign, another rotation answers 409 saying when the oldest stops.`,
    tag,
    auth: ["operator", "vendor"],
    params: ProductParams,
    responses: { 200: { description: "The new secret", schema: SecretOut, example: examples.secret } },
    errors: {
      conflict: `The product is not delivered by syndication; or ${MAX_GRACE_SECRETS} secrets replaced in the last 24 hours still sign`,
    },
    async handle({ env, request, principal, params }) {
      await manageable(env, principal, params.id);
      const secret = newSigningSecret();
      // The answer shows the secret, so it is never kept: the same request again rotates again.
      // The grace's end is recorded with the Idempotency-Key (the secret never is): a retry of a
      // first attempt that rotated and died keeps the secret from before it as the previous one.
      const { value: expires, recalled } = await choiceFor(request, async () =>
        new Date(Date.now() + ROTATION_GRACE_MS).toISOString(),
      );
      const set = await rotateSigningSecret(
        env,
        params.id,
        secret,
        expires,
        new Date().toISOString(),
        vendorGuard(principal),
        recalled,
      );
      if (!set) throw notFound(`product ${params.id} does not exist`);
      if ("crowded" in set) {
        throw new AppError(
          "conflict",
          `${MAX_GRACE_SECRETS} secrets replaced in the last 24 hours still sign every delivery; the oldest stops at ${set.until}: rotate after that`,
        );
      }
      return {
        status: 200,
        body: {
          product: params.id,
          signing_secret: secret,
          previous_secret_expires_at: set.previousSecretExpiresAt,
        },
      };
    },
  }),
  defineRoute({
    method: "GET",
    path: "/v1/webhooks/deliveries",
    summary: "List webhook deliveries",
    description:
      "Oldest first. The operator sees every delivery; a vendor its own. With `status=pending`, `meta.backlog` counts the pending deliveries per endpoint, with when the oldest was made.",
    tag,
    auth: ["operator", "vendor"],
    query: DeliveriesQuery,
    responses: {
      200: {
        description: "A page",
        schema: DeliveryPageOut,
        example: { objects: [examples.delivery], meta: { limit: 50, next_cursor: null } },
      },
    },
    async handle({ env, principal, query }) {
      const page = async (window: PageWindow) => {
        const { rows, total } = await listDeliveries(env, {
          vendorId: vendorScope(principal),
          status: query.status,
          ...window,
        });
        const listed = toPage(rows, window, (d) => d.id, deliveryOut, total);
        if (query.status !== "pending") return listed;
        const pending = await backlog(env, vendorScope(principal));
        const backlogOut = pending.map((b) => ({
          endpoint: b.endpoint,
          pending: b.pending,
          oldest_created_at: b.oldest,
        }));
        return { ...listed, meta: { ...listed.meta, backlog: backlogOut } };
      };
      return {
        status: 200,
        ...(await pagedAnswer(
          pageWindow(query, (key) => v.is(DeliveryId, key)),
          page,
        )),
      };
    },
  }),
  defineRoute({
    method: "GET",
    path: "/v1/webhooks/deliveries/{id}",
    summary: "One delivery, with its attempts and its payload",
    description: "`attempts` lists each attempt, oldest first; `payload` is the event as posted.",
    tag,
    auth: ["operator", "vendor"],
    params: DeliveryParams,
    responses: {
      200: {
        description: "The delivery",
        schema: DeliveryDetailOut,
        headers: ETAG,
        example: {
          ...examples.delivery,
          payload: {
            date: "2026-12-01T12:00:00Z",
            entity: "Subscription",
            entityUrl: `http://127.0.0.1:8787/api/subscription/${examples.delivery.subscription}`,
            id: examples.delivery.subscription,
            type: "CREATED",
            sequence: 1,
          },
          attempts: [
            { attempt: 1, at: examples.delivery.created_at, status: 204, error: null, duration_ms: 42 },
          ],
        },
      },
    },
    async handle({ env, principal, params }) {
      const d = await findDelivery(env, params.id, vendorScope(principal));
      if (!d) throw notFound(`delivery ${params.id} does not exist`);
      const attempts = await attemptsOf(env, d.id);
      return tagged({
        ...deliveryOut(d),
        // Written by app/webhooks.ts from the event it posts.
        payload: JSON.parse(d.payload) as v.InferOutput<typeof EventOut>,
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
    summary: "Deliver an event again",
    description:
      "A dead or delivered event is delivered again, with the same `webhook-id`; its retry schedule and its retention horizon start over.",
    tag,
    auth: ["operator", "vendor"],
    params: DeliveryParams,
    responses: {
      202: {
        description: "Queued",
        schema: DeliveryOut,
        example: { ...examples.delivery, status: "pending", delivered_at: null },
      },
    },
    errors: { conflict: "The delivery is still pending" },
    async handle({ env, request, principal, params }) {
      const d = await findDelivery(env, params.id, vendorScope(principal));
      if (!d) throw notFound(`delivery ${params.id} does not exist`);
      // The redelivery's instant is recorded with the Idempotency-Key before it is made: a retry
      // of a first attempt that redelivered and died answers as that one, redelivering nothing more.
      const { value: at, recalled } = await choiceFor(request, async () => new Date().toISOString());
      const requeued = await redeliver(env, d, new Date(at), recalled);
      if (!requeued) throw new AppError("conflict", `delivery ${d.id} is still pending`);
      return { status: 202, body: deliveryOut(requeued) };
    },
  }),
];
