import * as v from "valibot";
import { visibleCustomer } from "../../app/customers";
import {
  buy,
  consume,
  extend,
  listPage,
  plan,
  present,
  unwrap,
  visibleRecord,
} from "../../app/subscriptions";
import { listProducts } from "../../db/products";
import { findProduct } from "../../domain/catalog";
import { chargeFor } from "../../domain/metering";
import { money, type SubscriptionRecord } from "../../domain/subscriptions";
import type { Env } from "../../env";
import { subscriptionObject } from "../../objects/subscription-object";
import { IdParams } from "../../schemas/common";
import {
  ActionBody,
  ActionQuery,
  ConsumptionRequest,
  ListQuery,
  PageOut,
  PurchaseOut,
  PurchaseRequest,
  SubscriptionOut,
  UpdateRequest,
  UsageOut,
} from "../../schemas/subscriptions";
import type { Principal } from "../auth";
import { badRequest } from "../errors";
import { decodeCursor, toPage } from "../pagination";
import { defineRoute } from "../route";
import { orderOut } from "./orders";

/** The subscriptions API (spec/subscriptions-api.md, spec/caas-partner-api.md) under /v1. */

const tag = "Subscriptions";
const partners = ["partner", "operator"] as const;
const now = () => new Date();

/** Operators act for a partner they name; partners act for themselves. */
function actingPartner(principal: Principal): string {
  if (!principal.partnerId) throw badRequest("operators buy through a partner's API key");
  return principal.partnerId;
}

const json = (body: unknown, status = 200, location?: string) =>
  Response.json(body, { status, ...(location ? { headers: { location } } : {}) });

async function presented(env: Env, record: SubscriptionRecord, status = 200) {
  return json(await present(env, record, now()), status, `/v1/subscriptions/${record.id}/`);
}

export const subscriptionRoutes = [
  defineRoute({
    method: "POST",
    path: "/v1/subscriptions",
    summary: "Buy subscriptions",
    description:
      "At most 500 objects. The duration truth table and noon-UTC rounding apply; tx and CaaS clouds ignore time parameters; ip/vlan with amount > 1 become that many subscriptions of amount 1. All or nothing: if any object is invalid or over quota, nothing is bought.",
    tag,
    auth: partners,
    body: PurchaseRequest,
    responses: {
      201: { description: "Bought", schema: PurchaseOut },
      400: { description: "Invalid objects; `errors` names each field" },
      413: { description: "Over quota: names the resource, limit and usage; nothing bought" },
    },
    async handle({ env, principal, body }) {
      const at = now();
      const partnerId = actingPartner(principal);
      const planned = await plan(env, partnerId, body.objects, at);
      const bought = await buy(env, partnerId, planned.subscriptions, at);
      const objects = await Promise.all(bought.subscriptions.map((r) => present(env, r, at)));
      return json(
        {
          objects,
          meta: {
            total_price: money(bought.totalMinor, bought.currency),
            currency: bought.currency,
            orders: bought.orders.map(orderOut),
          },
        },
        201,
      );
    },
  }),
  defineRoute({
    method: "POST",
    path: "/v1/subscriptioncalculator",
    summary: "Price subscriptions without buying them",
    description: "Same input and validation as buying; nothing is bought or reserved.",
    tag,
    auth: partners,
    body: PurchaseRequest,
    responses: { 200: { description: "Priced", schema: PageOut } },
    async handle({ env, principal, body }) {
      const planned = await plan(env, actingPartner(principal), body.objects, now());
      return json({
        objects: planned.subscriptions.map((p) => ({
          resource: p.product.id,
          product: p.product.id,
          customer: p.customer,
          amount: p.amount,
          start_time: p.start.toISOString(),
          end_time: p.end?.toISOString() ?? null,
          period: p.period,
          auto_renew: p.autoRenew,
          price: money(p.priceMinor, p.product.currency),
          currency: p.product.currency,
        })),
        meta: { total_price: money(planned.totalMinor, planned.currency), currency: planned.currency },
      });
    },
  }),
  defineRoute({
    method: "GET",
    path: "/v1/subscriptions",
    summary: "List subscriptions",
    tag,
    auth: partners,
    query: ListQuery,
    responses: { 200: { description: "A page", schema: PageOut } },
    async handle({ env, principal, query }) {
      const { rows, objects } = await listPage(env, await listQuery(env, principal, query), false);
      return json({
        objects,
        meta: toPage(
          rows,
          query.limit,
          (r) => r.id,
          () => null,
        ).meta,
      });
    },
  }),
  defineRoute({
    method: "GET",
    path: "/v1/groupedsubscriptions",
    summary: "List the first subscription of each extension chain",
    description: "`descendants` lists the extensions; `end_time` is that of the chain's last subscription.",
    tag,
    auth: partners,
    query: ListQuery,
    responses: { 200: { description: "A page", schema: PageOut } },
    async handle({ env, principal, query }) {
      const { rows, objects } = await listPage(env, await listQuery(env, principal, query), true);
      return json({
        objects,
        meta: toPage(
          rows,
          query.limit,
          (r) => r.id,
          () => null,
        ).meta,
      });
    },
  }),
  defineRoute({
    method: "GET",
    path: "/v1/subscriptions/{id}",
    summary: "Read a subscription (from its object: read-your-writes)",
    tag,
    auth: partners,
    params: IdParams,
    responses: {
      200: { description: "The subscription", schema: SubscriptionOut },
      404: { description: "Not found" },
    },
    async handle({ env, principal, params }) {
      return presented(env, await visibleRecord(env, principal, params.id));
    },
  }),
  defineRoute({
    method: "PATCH",
    path: "/v1/subscriptions/{id}",
    summary: "Change the quantity (amount) or auto_renew",
    description:
      "Quantity up holds the difference on the customer's quota (413 if over), down releases it. Other fields are immutable.",
    tag,
    auth: partners,
    params: IdParams,
    body: UpdateRequest,
    responses: {
      200: { description: "Updated", schema: SubscriptionOut },
      400: { description: "An immutable or invalid field" },
      413: { description: "Over quota" },
    },
    async handle({ env, principal, params, body }) {
      await visibleRecord(env, principal, params.id);
      const object = subscriptionObject(env, params.id);
      let record: SubscriptionRecord | null = null;
      if (body.amount !== undefined) record = unwrap(await object.changeAmount(body.amount, now()));
      if (body.auto_renew !== undefined) record = unwrap(await object.setAutoRenew(body.auto_renew));
      return presented(env, record ?? (await visibleRecord(env, principal, params.id)));
    },
  }),
  defineRoute({
    method: "DELETE",
    path: "/v1/subscriptions/{id}",
    summary: "Cancel a subscription",
    description: "Closes the running interval and releases the quota. Cancelling again changes nothing.",
    tag,
    auth: partners,
    params: IdParams,
    responses: { 200: { description: "Cancelled", schema: SubscriptionOut } },
    async handle({ env, principal, params }) {
      await visibleRecord(env, principal, params.id);
      return presented(env, unwrap(await subscriptionObject(env, params.id).cancel(now())));
    },
  }),
  defineRoute({
    method: "POST",
    path: "/v1/subscriptions/{id}/action",
    summary: "extend, auto_renew, start or stop (?do=…)",
    description:
      "`extend`: buys the next term of the chain (body: optional `period` or `end_time`). `auto_renew`: toggles, or sets `auto_renew` from the body. `start`/`stop`: run a CaaS cloud.",
    tag,
    auth: partners,
    params: IdParams,
    query: ActionQuery,
    body: ActionBody,
    responses: {
      200: { description: "The subscription (for extend: the new one)", schema: SubscriptionOut },
      409: { description: "The chain was cancelled" },
      413: { description: "Over quota" },
    },
    async handle({ env, principal, params, query, body }) {
      await visibleRecord(env, principal, params.id);
      const object = subscriptionObject(env, params.id);
      switch (query.do) {
        case "extend":
          return presented(env, await extend(env, principal, params.id, body, now()));
        case "auto_renew":
          return presented(env, unwrap(await object.setAutoRenew(body.auto_renew)));
        case "start":
        case "stop":
          return presented(env, unwrap(await object.run(query.do, now())));
      }
    },
  }),
  defineRoute({
    method: "GET",
    path: "/v1/subscriptions/{id}/usage",
    summary: "Run intervals and charges (Σ amount × running seconds × unit price)",
    tag,
    auth: partners,
    params: IdParams,
    responses: { 200: { description: "Usage", schema: UsageOut } },
    async handle({ env, principal, params }) {
      const r = await visibleRecord(env, principal, params.id);
      const at = now();
      const price = BigInt(r.unitPriceMinor);
      const total = chargeFor(r.runs, price, at.getTime());
      return json({
        subscription: r.id,
        currency: r.currency,
        unit_price_per_hour: money(price, r.currency),
        intervals: r.runs.map((run) => ({
          start: new Date(run.start).toISOString(),
          end: run.end === null ? null : new Date(run.end).toISOString(),
          quantity: run.quantity,
          seconds: Number(chargeFor([{ ...run, quantity: 1 }], 0n, at.getTime()).seconds),
        })),
        running_seconds: Number(total.seconds),
        charge: money(total.chargeMinor, r.currency),
        as_of: at.toISOString(),
      });
    },
  }),
  defineRoute({
    method: "POST",
    path: "/v1/customers/{id}/consumption",
    summary: "Report consumption of a depletable resource (e.g. tx)",
    description:
      "Drains the customer's depletable subscriptions of the resource oldest first; at zero a subscription expires and the next becomes active. `unallocated` is what no subscription covered.",
    tag,
    auth: ["partner", "operator", "service"],
    params: IdParams,
    body: ConsumptionRequest,
    responses: {
      200: {
        description: "What was drained",
        schema: v.object({ objects: v.array(SubscriptionOut), meta: v.object({ unallocated: v.number() }) }),
      },
    },
    async handle({ env, principal, params, body }) {
      const customer = await visibleCustomer(env, principal, params.id);
      const at = now();
      const product = findProduct(await listProducts(env), body.resource);
      if (!product)
        throw badRequest(`unknown resource "${body.resource}"`, [{ point: "/resource", message: "unknown" }]);
      const result = await consume(env, customer.id, product.id, body.amount, at);
      const objects = await Promise.all(result.touched.map((r) => present(env, r, at)));
      return json({ objects, meta: { unallocated: result.unallocated } });
    },
  }),
];

async function listQuery(env: Env, principal: Principal, query: v.InferOutput<typeof ListQuery>) {
  const catalog = query.resource ? await listProducts(env) : [];
  return {
    partnerId: actingPartner(principal),
    status: query.status,
    // Aliases name their product (`hdd` is `dssd`); an unknown name simply matches nothing.
    products: (query.resource ?? []).map((r) => findProduct(catalog, r)?.id ?? r),
    after: decodeCursor(query.cursor),
    limit: query.limit,
    now: now(),
  };
}
