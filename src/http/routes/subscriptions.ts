import * as v from "valibot";
import { catalogKnowing, productIdsNamed } from "../../app/catalog";
import { visibleCustomer } from "../../app/customers";
import { extensionTerm } from "../../app/extend";
import { respond, storedObject } from "../../app/operations";
import { listPage, present, readSubscription, scopeOf, visibleRecord } from "../../app/reads";
import { assignIds, plan } from "../../app/subscriptions";
import { findProduct } from "../../domain/catalog";
import { uuidv7 } from "../../domain/ids";
import { chargeFor } from "../../domain/metering";
import { MAX_OBJECTS } from "../../domain/purchase";
import { amountChangeRefusal, money, runRefusal, type SubscriptionRecord } from "../../domain/subscriptions";
import { accruing, usageLines } from "../../domain/usage";
import type { Env } from "../../env";
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
import { ifMatch, taggedText } from "../conditional";
import { badRequest, refused } from "../errors";
import { decodeCursor, toPage } from "../pagination";
import { defineRoute } from "../route";

/**
 * The subscriptions API (spec/subscriptions-api.md, spec/caas-partner-api.md) under /v1. Writes
 * are validated and authorized here, then answered at once or, with `Prefer: respond-async`, as
 * 202 and an operation to poll (app/operations.ts).
 */

const tag = "Subscriptions";
const partners = ["partner", "operator"] as const;
const now = () => new Date();

const ASYNC =
  " With `Prefer: respond-async`: 202 Accepted, `Location: /v1/operations/{opRef}` and `Retry-After`; the operation then answers what this would have.";

const IF_MATCH =
  " With `If-Match` (an ETag of `GET /v1/subscriptions/{id}`, or `*`): 412 if the subscription changed since; the check and the change are one step in its object.";

/**
 * The version a write applies to when its If-Match names a tag: the one compared, so a change in
 * between answers 412 (`SubscriptionObject.change`).
 */
async function expectedVersion(env: Env, request: Request, record: SubscriptionRecord) {
  const compared = await ifMatch(request, () => present(env, record, now()));
  return compared ? { expectedVersion: record.version } : {};
}

/** Operators act for a partner they name; partners act for themselves. */
function actingPartner(principal: Principal): string {
  if (!principal.partnerId) throw badRequest("operators buy through a partner's API key");
  return principal.partnerId;
}

async function listQuery(env: Env, principal: Principal, query: v.InferOutput<typeof ListQuery>) {
  return {
    partnerId: actingPartner(principal),
    status: query.status,
    // Aliases name their product (`hdd` is `dssd`).
    products: await productIdsNamed(env, query.resource ?? []),
    after: decodeCursor(query.cursor),
    limit: query.limit,
    now: now(),
  };
}

/** The two listings share everything but `grouped`: each chain's first only, with the chain's end. */
function listRoute(path: string, summary: string, grouped: boolean) {
  return defineRoute({
    method: "GET",
    path,
    summary,
    tag,
    auth: partners,
    query: ListQuery,
    responses: { 200: { description: "A page", schema: PageOut } },
    async handle({ env, principal, query }) {
      const { rows, objects } = await listPage(env, await listQuery(env, principal, query), grouped);
      return Response.json({
        objects,
        meta: toPage(
          rows,
          query.limit,
          (r) => r.record.id,
          () => null,
        ).meta,
      });
    },
  });
}

export const subscriptionRoutes = [
  defineRoute({
    method: "POST",
    path: "/v1/subscriptions",
    summary: "Buy subscriptions",
    description: `At most ${MAX_OBJECTS} objects. The duration truth table and noon-UTC rounding apply; tx and CaaS clouds ignore time parameters; ip/vlan with amount > 1 become that many subscriptions of amount 1. All or nothing: if any object is invalid or over quota, nothing is bought.${ASYNC}`,
    tag,
    auth: partners,
    body: PurchaseRequest,
    responses: {
      201: { description: "Bought", schema: PurchaseOut },
      202: { description: "Accepted as an operation" },
      400: { description: "Invalid objects; `errors` names each field" },
      409: {
        description: "Over quota (`quota-exceeded`): names the resource, limit and usage; nothing bought",
      },
    },
    async handle({ env, request, principal, body }) {
      const at = now();
      const partnerId = actingPartner(principal);
      const planned = await plan(env, partnerId, body.objects, at);
      // A syndicated product is provisioned by its vendor: the purchase always runs as an operation.
      const syndicated = planned.subscriptions.some((p) => p.product.delivery === "syndicated");
      return respond(
        env,
        request,
        {
          kind: "purchase",
          partnerId,
          at: at.toISOString(),
          objects: body.objects.map(storedObject),
          ids: assignIds(planned.subscriptions),
        },
        { mustWait: syndicated, planned: planned.subscriptions },
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
      return Response.json({
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
  listRoute("/v1/subscriptions", "List subscriptions", false),
  listRoute(
    "/v1/groupedsubscriptions",
    "List the first subscription of each extension chain; `descendants` lists the extensions and `end_time` is that of the chain's last subscription",
    true,
  ),
  defineRoute({
    method: "GET",
    path: "/v1/subscriptions/{id}",
    summary: "Read a subscription (from its object: read-your-writes)",
    description: "Answers a strong `ETag`, for `If-Match` on its changes (and `If-None-Match`: 304).",
    tag,
    auth: partners,
    params: IdParams,
    responses: {
      200: { description: "The subscription", schema: SubscriptionOut },
      404: { description: "Not found" },
    },
    async handle({ env, principal, params }) {
      return taggedText(await readSubscription(env, scopeOf(principal), params.id, now()));
    },
  }),
  defineRoute({
    method: "PATCH",
    path: "/v1/subscriptions/{id}",
    summary: "Change auto_renew, or a CaaS cloud's quantity (amount)",
    description: `A CaaS cloud's quantity up holds the difference on the customer's quota (409, quota-exceeded, if over), down releases it, and its metering splits the running interval. Every other kind is prepaid: only auto_renew changes, and an amount answers 409 (buy another subscription, or extend). Other fields are immutable.${IF_MATCH}${ASYNC}`,
    tag,
    auth: partners,
    params: IdParams,
    body: UpdateRequest,
    responses: {
      200: { description: "Updated", schema: SubscriptionOut },
      202: { description: "Accepted as an operation" },
      400: { description: "An immutable or invalid field" },
      409: { description: "An amount on a prepaid subscription, one that has ended, or over quota" },
      412: { description: "If-Match does not match: the subscription changed since it was read" },
    },
    async handle({ env, request, principal, params, body }) {
      const record = await visibleRecord(env, scopeOf(principal), params.id);
      const condition = await expectedVersion(env, request, record);
      const refusal = body.amount === undefined ? null : amountChangeRefusal(record);
      if (refusal) throw refused(refusal);
      return respond(env, request, {
        kind: "update",
        partnerId: record.partnerId,
        at: now().toISOString(),
        subscription: record.id,
        ...(body.amount !== undefined ? { amount: body.amount } : {}),
        ...(body.auto_renew !== undefined ? { autoRenew: body.auto_renew } : {}),
        ...condition,
      });
    },
  }),
  defineRoute({
    method: "DELETE",
    path: "/v1/subscriptions/{id}",
    summary: "Cancel a subscription",
    description: `Closes the running interval and releases the quota. Cancelling again changes nothing.${IF_MATCH}${ASYNC}`,
    tag,
    auth: partners,
    params: IdParams,
    responses: {
      200: { description: "Cancelled", schema: SubscriptionOut },
      202: { description: "Accepted as an operation" },
      412: { description: "If-Match does not match: the subscription changed since it was read" },
    },
    async handle({ env, request, principal, params }) {
      const record = await visibleRecord(env, scopeOf(principal), params.id);
      return respond(env, request, {
        kind: "cancel",
        partnerId: record.partnerId,
        at: now().toISOString(),
        subscription: record.id,
        ...(await expectedVersion(env, request, record)),
      });
    },
  }),
  defineRoute({
    method: "POST",
    path: "/v1/subscriptions/{id}/action",
    summary: "extend, auto_renew, start or stop (?do=…)",
    description: `\`extend\`: buys the next term of the chain (body: optional \`period\` or \`end_time\`). \`auto_renew\`: toggles, or sets \`auto_renew\` from the body. \`start\`/\`stop\`: run a CaaS cloud.${ASYNC}`,
    tag,
    auth: partners,
    params: IdParams,
    query: ActionQuery,
    body: ActionBody,
    responses: {
      200: { description: "The subscription (for extend: the new one)", schema: SubscriptionOut },
      202: { description: "Accepted as an operation" },
      409: { description: "The chain was cancelled, the subscription has ended, or over quota" },
    },
    async handle({ env, request, principal, params, query, body }) {
      const record = await visibleRecord(env, scopeOf(principal), params.id);
      const at = now();
      const common = { partnerId: record.partnerId, at: at.toISOString(), subscription: record.id };
      switch (query.do) {
        case "extend":
          extensionTerm(record, body, at);
          return respond(env, request, {
            kind: "extend",
            ...common,
            ...(body.period !== undefined ? { period: body.period } : {}),
            ...(body.end_time !== undefined ? { endTime: body.end_time.toISOString() } : {}),
            ids: { subscription: uuidv7(), order: uuidv7() },
          });
        case "auto_renew":
          // A toggle is decided now, so running the operation twice sets rather than flips twice.
          return respond(env, request, {
            kind: "auto_renew",
            ...common,
            value: body.auto_renew ?? !record.autoRenew,
          });
        case "start":
        case "stop": {
          const refusal = runRefusal(record, query.do);
          if (refusal) throw refused(refusal);
          return respond(env, request, { kind: "run", ...common, action: query.do });
        }
      }
    },
  }),
  defineRoute({
    method: "GET",
    path: "/v1/subscriptions/{id}/usage",
    summary: "Run intervals and charges: the usage lines written, plus what the running interval accrues",
    description:
      "Each line is a piece of running time within one UTC month, rounded on its own (half up, quantity × seconds × unit price per hour ÷ 3600); `charge` = `billed` (Σ lines) + `accruing` (the running interval up to now, rounded the same way).",
    tag,
    auth: partners,
    params: IdParams,
    responses: { 200: { description: "Usage", schema: UsageOut } },
    async handle({ env, principal, params }) {
      const r = await visibleRecord(env, scopeOf(principal), params.id);
      const at = now();
      const price = BigInt(r.unitPriceMinor);
      const total = chargeFor(r.runs, price, at.getTime());
      // What the charges ledger has (or will have, once the object's push lands) and what accrues.
      const lines = usageLines(r.id, r.runs, price);
      const billed = lines.reduce((n, l) => n + l.amountMinor, 0n);
      const open = accruing(r.id, r.runs, price, at.getTime());
      return Response.json({
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
        charge: money(billed + open.amountMinor, r.currency),
        billed: money(billed, r.currency),
        accruing: money(open.amountMinor, r.currency),
        lines: lines.map((l) => ({
          id: l.key,
          period_start: new Date(l.start).toISOString(),
          period_end: new Date(l.end).toISOString(),
          quantity: l.quantity,
          seconds: Number(l.seconds),
          amount: money(l.amountMinor, r.currency),
        })),
        as_of: at.toISOString(),
      });
    },
  }),
  defineRoute({
    method: "POST",
    path: "/v1/customers/{id}/consumption",
    summary: "Report consumption of a depletable resource (e.g. tx)",
    description: `Drains the customer's depletable subscriptions of the resource oldest first; at zero a subscription expires and the next becomes active. \`unallocated\` is what no subscription covered. A report is applied once: its retry with the same Idempotency-Key drains nothing more.${ASYNC}`,
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
    async handle({ env, request, principal, params, body }) {
      const customer = await visibleCustomer(env, principal, params.id);
      const product = findProduct(await catalogKnowing(env, [body.resource]), body.resource);
      if (!product)
        throw badRequest(`unknown resource "${body.resource}"`, [{ point: "/resource", message: "unknown" }]);
      return respond(env, request, {
        kind: "consume",
        partnerId: customer.partnerId,
        at: now().toISOString(),
        customer: customer.id,
        product: product.id,
        amount: body.amount,
        report: uuidv7(),
      });
    },
  }),
];
