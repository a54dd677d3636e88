import type * as v from "valibot";
import { reportDeployment } from "../../app/deployment";
import { runReported } from "../../app/operations";
import { waitsInQueue } from "../../app/reads";
import type { Principal } from "../../db/credentials";
import { findCustomer } from "../../db/customers";
import { findOrder } from "../../db/orders";
import { listProducts } from "../../db/products";
import { customerHasProducts } from "../../db/subscriptions";
import { badRequest, notFound } from "../../domain/errors";
import { EVERYTHING } from "../../domain/scope";
import { money, type SubscriptionRecord, statusOf } from "../../domain/subscriptions";
import { subscriptionObject } from "../../objects/subscription-object";
import { IdParams } from "../../schemas/common";
import { VendorOrderOut, VendorPatch, VendorSubscriptionOut, VendorUserOut } from "../../schemas/vendor";
import { tagged } from "../conditional";
import * as examples from "../examples";
import { ETAG } from "../reply";
import { defineRoute } from "../route";

/**
 * The vendor API (ClouDesire dialect, spec/syndication-webhooks.md): a vendor reads the
 * subscriptions of its own products, their orders and customers, and reports provisioning.
 * Anything else does not exist for it.
 */

const tag = "Vendor API (ClouDesire)";
const vendor = ["vendor"] as const;

const ref = (kind: string, id: string) => ({ url: `${kind}/${id}` });
const seconds = (iso: string) => iso.replace(/\.\d{3}Z$/, "Z");

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

async function subscriptionView(env: Env, r: SubscriptionRecord) {
  // A depletable waiting behind an older one of its customer and product is inactive, as on `/v1`.
  const queued = await waitsInQueue(env, r);
  return {
    id: r.id,
    self: `subscription/${r.id}`,
    type: "NORMAL" as const,
    billingPeriod: 0,
    deploymentStatus: r.deploymentStatus,
    status: STATUSES[statusOf(r, new Date(), queued)],
    startDate: seconds(r.startTime),
    endDate: r.endTime === null ? null : seconds(r.endTime),
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

const STATUSES = { active: "ACTIVE", inactive: "INACTIVE", expired: "EXPIRED" } as const;

const ORDER_STATES = { pending: "PENDING", completed: "VENDOR_APPROVED", failed: "FAILED" } as const;

export const vendorRoutes = [
  defineRoute({
    method: "GET",
    path: "/api/subscription/{id}",
    summary: "A subscription of one of the vendor's products",
    description: "Any other subscription does not exist for the vendor (404).",
    tag,
    auth: vendor,
    params: IdParams,
    responses: {
      200: {
        description: "The subscription",
        schema: VendorSubscriptionOut,
        headers: ETAG,
        example: examples.vendorSubscription,
      },
    },
    errors: { not_found: "Not one of the vendor's" },
    async handle({ env, principal, params }) {
      return tagged(await subscriptionView(env, await ownSubscription(env, principal, params.id)));
    },
  }),
  defineRoute({
    method: "PATCH",
    path: "/api/subscription/{id}",
    summary: "Report provisioning: deploymentStatus, syndicatedEndpoints, endUserInstructions",
    description:
      "PENDING → DEPLOYED or FAILED; DEPLOYED → STOPPED or UNDEPLOYED; STOPPED → DEPLOYED or UNDEPLOYED; UNDEPLOYED → DEPLOYED. DEPLOYED completes the pending purchase (its operation answers 201) and starts its term: a term that should have started by then starts now, as long as it was bought for, and is charged for the term it gets; FAILED undoes it and releases the quota. UNDEPLOYED on a live term also undeploys the later live terms of its chain (extensions and renewals bought before it: a running cloud stops), and DEPLOYED again lifts that. A subscription that has ended (cancelled, expired, failed) sends no more events: it takes only UNDEPLOYED, and reports that change nothing (409 otherwise); one that ended never deployed (FAILED, or PENDING: undone by the 7-day deadline) takes nothing.",
    tag,
    auth: vendor,
    params: IdParams,
    body: VendorPatch,
    bodyExample: {
      deploymentStatus: "DEPLOYED",
      syndicatedEndpoints: ["https://backup.example.com/customers/101"],
      endUserInstructions: "Sign in with your e-mail address.",
    },
    responses: {
      200: {
        description: "The subscription",
        schema: VendorSubscriptionOut,
        example: examples.vendorSubscription,
      },
    },
    errors: {
      bad_request: "Invalid body, or a transition the lifecycle does not allow; nothing changed",
      not_found: "Not one of the vendor's",
      conflict: "The subscription has ended: only UNDEPLOYED is taken; nothing changed",
    },
    async handle({ env, principal, params, body }) {
      const instructions = body.endUserInstructions ?? body.endUserIstructions;
      if (
        body.endUserInstructions !== undefined &&
        body.endUserIstructions !== undefined &&
        body.endUserInstructions !== body.endUserIstructions
      ) {
        const message = "gives other instructions than endUserInstructions: send one of the two spellings";
        throw badRequest(`endUserIstructions ${message}`, [{ point: "/endUserIstructions", message }]);
      }
      if (
        body.deploymentStatus === undefined &&
        body.syndicatedEndpoints === undefined &&
        instructions === undefined
      ) {
        throw badRequest("nothing to change", [{ point: "", message: "name at least one field" }]);
      }
      await ownSubscription(env, principal, params.id);
      const record = await reportDeployment(env, params.id, {
        ...(body.deploymentStatus !== undefined ? { deploymentStatus: body.deploymentStatus } : {}),
        ...(body.syndicatedEndpoints !== undefined ? { syndicatedEndpoints: body.syndicatedEndpoints } : {}),
        ...(instructions !== undefined ? { endUserInstructions: instructions } : {}),
      });
      // The purchase waiting on this vendor can now complete, or be undone: any status but PENDING
      // was reported (a STOPPED or UNDEPLOYED after a DEPLOYED whose own request died before it ran
      // the operation). A finished operation ignores it.
      if (record.operationRef && record.deploymentStatus !== "PENDING") {
        await runReported(env, record.operationRef);
      }
      return {
        status: 200,
        body: await subscriptionView(env, await ownSubscription(env, principal, params.id)),
      };
    },
  }),
  defineRoute({
    method: "GET",
    path: "/api/order/{id}",
    summary: "An order that bought one of the vendor's products",
    description:
      "Only its lines of the vendor's own products; any other order does not exist for the vendor.",
    tag,
    auth: vendor,
    params: IdParams,
    responses: {
      200: { description: "The order", schema: VendorOrderOut, headers: ETAG, example: examples.vendorOrder },
    },
    errors: { not_found: "No line of it is one of the vendor's products" },
    async handle({ env, principal, params }) {
      const order = await findOrder(env, params.id, EVERYTHING);
      const own = await ownProducts(env, principal);
      const lines = order?.lines.filter((l) => own.has(l.product)) ?? [];
      const first = lines[0];
      if (!order || !first) throw notFound(`order ${params.id} does not exist`);
      const wireLines = lines.map((l) => ({
        product: ref("product", l.product),
        subscription: ref("subscription", l.subscription),
        quantity: l.amount,
        price: Number(money(BigInt(l.priceMinor), order.currency)),
      }));
      // Its own lines only: the order's total would tell what else the customer bought.
      const totalPrice = Number(
        money(
          lines.reduce((sum, l) => sum + BigInt(l.priceMinor), 0n),
          order.currency,
        ),
      );
      const buyer = await findCustomer(env, order.customerId, null);
      const body: v.InferOutput<typeof VendorOrderOut> = {
        id: order.id,
        self: `order/${order.id}`,
        type: "NORMAL",
        date: seconds(order.createdAt),
        buyer: ref("user", order.customerId),
        subscription: ref("subscription", first.subscription),
        budget: {
          configuration: ref("productVersion", first.product),
          endOfPeriod: first.end ? seconds(first.end) : null,
          lines: wireLines,
          nation: buyer?.address?.country ?? null,
          totalPrice,
        },
        lines: wireLines,
        totalPrice,
        currency: order.currency,
        state: ORDER_STATES[order.state],
      };
      return tagged(body);
    },
  }),
  defineRoute({
    method: "GET",
    path: "/api/user/{id}",
    summary: "A customer who subscribed to one of the vendor's products",
    description: "Any other customer does not exist for the vendor (404).",
    tag,
    auth: vendor,
    params: IdParams,
    responses: {
      200: {
        description: "The customer",
        schema: VendorUserOut,
        headers: ETAG,
        example: examples.vendorUser,
      },
    },
    errors: { not_found: "Not a customer of the vendor's products" },
    async handle({ env, principal, params }) {
      const customer = await findCustomer(env, params.id, null);
      if (
        !customer ||
        !(await customerHasProducts(env, customer.id, [...(await ownProducts(env, principal))]))
      ) {
        throw notFound(`user ${params.id} does not exist`);
      }
      const body: v.InferOutput<typeof VendorUserOut> = {
        id: customer.id,
        self: `user/${customer.id}`,
        userName: customer.userName ?? customer.email ?? customer.id,
        name: customer.name,
        email: customer.email,
        phoneNumber: customer.phone,
        address: customer.address ?? null,
        creationDate: seconds(customer.createdAt),
        activationDate: seconds(customer.createdAt),
        activated: true,
        enabled: true,
        acceptedTerms: true,
        environment: "stratus",
        userRole: "ROLE_USER",
      };
      return tagged(body);
    },
  }),
];
