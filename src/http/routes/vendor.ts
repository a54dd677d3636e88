import * as v from "valibot";
import { runOperation } from "../../app/operations";
import { unwrap } from "../../app/subscriptions";
import { findCustomer } from "../../db/customers";
import { findOrder } from "../../db/orders";
import { listProducts } from "../../db/products";
import { customerHasProducts } from "../../db/subscriptions";
import { money, type SubscriptionRecord, statusOf } from "../../domain/subscriptions";
import { DEPLOYMENT_STATUSES } from "../../domain/webhooks";
import type { Env } from "../../env";
import { subscriptionObject } from "../../objects/subscription-object";
import { IdParams } from "../../schemas/common";
import type { Principal } from "../auth";
import { taggedJson } from "../conditional";
import { badRequest, notFound } from "../errors";
import { defineRoute } from "../route";
import { Endpoint } from "./syndication";

/**
 * The vendor API (ClouDesire dialect, spec/syndication-webhooks.md): a vendor reads the
 * subscriptions of its own products, their orders and customers, and reports provisioning.
 * Anything else does not exist for it.
 */

const tag = "Vendor API (ClouDesire)";
const vendor = ["vendor"] as const;

const ref = (kind: string, id: string) => ({ url: `${kind}/${id}` });
const seconds = (iso: string | null) => (iso === null ? null : iso.replace(/\.\d{3}Z$/, "Z"));

async function ownProducts(env: Env, principal: Principal): Promise<Set<string>> {
  const catalog = await listProducts(env);
  return new Set(
    catalog.filter((p) => p.vendorId !== null && p.vendorId === principal.subjectId).map((p) => p.id),
  );
}

async function ownSubscription(env: Env, principal: Principal, id: string): Promise<SubscriptionRecord> {
  const record = await subscriptionObject(env, id).get();
  if (!record || record.vendorId === null || record.vendorId !== principal.subjectId) {
    throw notFound(`subscription ${id} does not exist`);
  }
  return record;
}

function subscriptionView(r: SubscriptionRecord) {
  return {
    id: r.id,
    self: `subscription/${r.id}`,
    type: "NORMAL",
    billingPeriod: 0,
    deploymentStatus: r.deploymentStatus,
    status: statusOf(r, new Date(), false).toUpperCase(),
    startDate: seconds(r.startTime),
    endDate: seconds(r.endTime),
    renewable: r.autoRenew,
    quantity: r.amount,
    product: ref("product", r.product),
    buyer: ref("user", r.customerId),
    orders: [ref("order", r.orderId)],
    invoices: [],
    syndicatedEndpoints: r.syndicatedEndpoints,
    endUserInstructions: r.endUserInstructions,
    sequence: r.sequence,
  };
}

const ORDER_STATES = { pending: "PENDING", completed: "VENDOR_APPROVED", failed: "FAILED" } as const;

const VendorPatch = v.strictObject(
  {
    deploymentStatus: v.optional(
      v.picklist(DEPLOYMENT_STATUSES, `must be one of ${DEPLOYMENT_STATUSES.join(", ")}`),
    ),
    syndicatedEndpoints: v.optional(v.pipe(v.array(Endpoint, "must be a list of URLs"), v.maxLength(20))),
    endUserInstructions: v.optional(v.pipe(v.string("must be text"), v.maxLength(4000))),
    // The spec's own example spells it so; vendors copying it are understood.
    endUserIstructions: v.optional(v.pipe(v.string("must be text"), v.maxLength(4000))),
  },
  "only deploymentStatus, syndicatedEndpoints and endUserInstructions can change",
);

export const vendorRoutes = [
  defineRoute({
    method: "GET",
    path: "/api/subscription/{id}",
    summary: "A subscription of one of the vendor's products",
    tag,
    auth: vendor,
    params: IdParams,
    responses: { 200: { description: "The subscription" }, 404: { description: "Not the vendor's" } },
    async handle({ env, principal, params }) {
      return taggedJson(subscriptionView(await ownSubscription(env, principal, params.id)));
    },
  }),
  defineRoute({
    method: "PATCH",
    path: "/api/subscription/{id}",
    summary: "Report provisioning: deploymentStatus, syndicatedEndpoints, endUserInstructions",
    description:
      "PENDING → DEPLOYED or FAILED; DEPLOYED → STOPPED or UNDEPLOYED; STOPPED → DEPLOYED or UNDEPLOYED; UNDEPLOYED → DEPLOYED. DEPLOYED completes the pending purchase (its operation answers 201); FAILED undoes it and releases the quota.",
    tag,
    auth: vendor,
    params: IdParams,
    body: VendorPatch,
    responses: {
      200: { description: "The subscription" },
      400: { description: "Invalid body or transition; nothing changed" },
      404: { description: "Not the vendor's" },
    },
    async handle({ env, principal, params, body }) {
      const instructions = body.endUserInstructions ?? body.endUserIstructions;
      if (
        body.deploymentStatus === undefined &&
        body.syndicatedEndpoints === undefined &&
        instructions === undefined
      ) {
        throw badRequest("nothing to change", [{ point: "", message: "name at least one field" }]);
      }
      await ownSubscription(env, principal, params.id);
      const record = unwrap(
        await subscriptionObject(env, params.id).setDeployment({
          ...(body.deploymentStatus !== undefined ? { deploymentStatus: body.deploymentStatus } : {}),
          ...(body.syndicatedEndpoints !== undefined
            ? { syndicatedEndpoints: body.syndicatedEndpoints }
            : {}),
          ...(instructions !== undefined ? { endUserInstructions: instructions } : {}),
        }),
      );
      // The purchase waiting on this vendor can now complete, or be undone.
      if (
        record.operationRef &&
        (record.deploymentStatus === "DEPLOYED" || record.deploymentStatus === "FAILED")
      ) {
        await runOperation(env, record.operationRef);
      }
      return Response.json(subscriptionView(await ownSubscription(env, principal, params.id)));
    },
  }),
  defineRoute({
    method: "GET",
    path: "/api/order/{id}",
    summary: "An order that bought one of the vendor's products",
    tag,
    auth: vendor,
    params: IdParams,
    responses: { 200: { description: "The order" }, 404: { description: "Not the vendor's" } },
    async handle({ env, principal, params }) {
      const order = await findOrder(env, params.id, null);
      const own = await ownProducts(env, principal);
      const lines = order?.lines.filter((l) => own.has(l.product)) ?? [];
      const first = lines[0];
      if (!order || !first) throw notFound(`order ${params.id} does not exist`);
      return taggedJson({
        id: order.id,
        self: `order/${order.id}`,
        type: "NORMAL",
        date: seconds(order.createdAt),
        buyer: ref("user", order.customerId),
        subscription: ref("subscription", first.subscription),
        lines: lines.map((l) => ({
          product: ref("product", l.product),
          subscription: ref("subscription", l.subscription),
          quantity: l.amount,
          price: Number(money(BigInt(l.priceMinor), order.currency)),
        })),
        totalPrice: Number(money(BigInt(order.totalMinor), order.currency)),
        currency: order.currency,
        state: ORDER_STATES[order.state],
      });
    },
  }),
  defineRoute({
    method: "GET",
    path: "/api/user/{id}",
    summary: "A customer who subscribed to one of the vendor's products",
    tag,
    auth: vendor,
    params: IdParams,
    responses: { 200: { description: "The customer" }, 404: { description: "Not the vendor's customer" } },
    async handle({ env, principal, params }) {
      const customer = await findCustomer(env, params.id, null);
      if (
        !customer ||
        !(await customerHasProducts(env, customer.id, [...(await ownProducts(env, principal))]))
      ) {
        throw notFound(`user ${params.id} does not exist`);
      }
      return taggedJson({
        id: customer.id,
        self: `user/${customer.id}`,
        userName: customer.userName ?? customer.email ?? customer.id,
        name: customer.name,
        email: customer.email,
        phoneNumber: customer.phone,
        address: customer.address ?? null,
        creationDate: seconds(customer.createdAt),
        activated: true,
        enabled: true,
        acceptedTerms: true,
        environment: "stratus",
        userRole: "ROLE_USER",
      });
    },
  }),
];
