import type * as v from "valibot";
import { actingPartner, requireCustomers, withCustomers } from "../../app/acting";
import { productIdsNamed } from "../../app/catalog";
import { acceptedPrice, continuesFrom, plannedAfter } from "../../app/extend";
import { storedObject } from "../../app/perform";
import { chainAutoRenew, listPage, readSubscription, scopeOf, visibleRecord } from "../../app/reads";
import { assignIds, plan } from "../../app/subscriptions";
import type { Principal } from "../../db/credentials";
import { badRequest, refused } from "../../domain/errors";
import { untagJson } from "../../domain/etag";
import { subscriptionIdBeside, uuidv7 } from "../../domain/ids";
import { MAX_OBJECTS } from "../../domain/purchase";
import { runRefusal } from "../../domain/refusals";
import { money } from "../../domain/subscriptions";
import { IdParams } from "../../schemas/common";
import {
  ACTION_MEMBERS,
  ActionBody,
  ActionQuery,
  ListQuery,
  PageOut,
  PurchaseOut,
  PurchaseRequest,
  QuoteOut,
  SubscriptionOut,
} from "../../schemas/subscriptions";
import { taggedText } from "../conditional";
import * as examples from "../examples";
import { ACCEPTED, respond } from "../operations";
import { byId, type PageWindow, pagedAnswer, pageWindow, toPage } from "../pagination";
import { ETAG } from "../reply";
import { defineRoute } from "../route";
import { ASYNC, expectedVersion, IF_MATCH, SUBSCRIPTION_LOCATION } from "./subscription-updates";

/**
 * The subscriptions API (spec/subscriptions-api.md, spec/caas-partner-api.md) under /v1. Writes
 * are validated and authorized here, then answered at once or, with `Prefer: respond-async`, as
 * 202 and an operation to poll (app/operations.ts).
 */

const tag = "Subscriptions";
/** A customer-scoped key reaches these too, within its customer (`scopeOf`). */
const partners = ["partner", "operator", "account"] as const;
const now = () => new Date();

async function listQuery(
  env: Env,
  principal: Principal,
  query: v.InferOutput<typeof ListQuery>,
  window: PageWindow,
) {
  return {
    scope: scopeOf(principal),
    customer: query.customer,
    status: query.status,
    // Aliases name their product (`hdd` is `dssd`).
    products: await productIdsNamed(env, query.resource ?? []),
    after: window.after,
    offset: window.offset,
    limit: window.limit,
    now: now(),
  };
}

/** The two listings share everything but `grouped`: each chain's first only, with the chain's end. */
function listRoute(path: string, summary: string, description: string, grouped: boolean) {
  return defineRoute({
    method: "GET",
    path,
    summary,
    description,
    tag,
    auth: partners,
    query: ListQuery,
    responses: {
      200: {
        description: "A page",
        schema: PageOut,
        example: { objects: [examples.subscription], meta: { limit: 50, next_cursor: null } },
      },
    },
    async handle({ env, principal, query }) {
      const page = async (window: PageWindow) => {
        // Bound to no object, no subscription matches a `subscribed_object` filter.
        if (query.subscribed_object !== undefined) {
          return { objects: [], meta: toPage([], window, String, String).meta };
        }
        const q = await listQuery(env, principal, query, window);
        const { rows, objects } = await listPage(env, q, grouped);
        return {
          objects,
          meta: toPage(
            rows,
            window,
            (r) => r.record.id,
            () => null,
          ).meta,
        };
      };
      return { status: 200, ...(await pagedAnswer(pageWindow(query, byId), page)) };
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
    bodyExample: examples.purchaseRequest,
    async: true,
    responses: {
      201: {
        description: "Bought: the subscriptions, the total and the orders",
        schema: PurchaseOut,
        headers: { Location: { description: "The first subscription bought.", required: true } },
        example: examples.purchase,
      },
      202: ACCEPTED,
    },
    errors: {
      bad_request:
        "Invalid objects (`errors` names each field: with a partner's key, `customer` is required and must be the partner's), or an operator buying without a partner's key",
      not_found: "With a customer-scoped key: another customer (omit `customer` to buy for its own)",
      over_limit: "Over quota: names the resource, limit and usage; nothing bought",
    },
    async handle({ env, request, principal, body }) {
      const at = now();
      const partnerId = actingPartner(principal);
      const objects = requireCustomers(withCustomers(principal, body.objects));
      const planned = await plan(env, partnerId, objects, at);
      const customers = new Set(objects.map((o) => o.customer));
      // A syndicated product is provisioned by its vendor: the purchase always runs as an operation.
      const syndicated = planned.subscriptions.some((p) => p.product.delivery === "syndicated");
      const answer = await respond(
        env,
        request,
        {
          kind: "purchase",
          partnerId,
          ...(customers.size === 1 ? { customerId: objects[0]?.customer } : {}),
          at: at.toISOString(),
          objects: objects.map(storedObject),
          ids: assignIds(planned.subscriptions),
          vendors: Object.fromEntries(planned.subscriptions.map((p) => [p.product.id, p.product.vendorId])),
          products: [...new Map(planned.subscriptions.map((p) => [p.product.id, p.product])).values()],
        },
        { mustWait: syndicated, planned: planned.subscriptions },
      );
      return answer;
    },
  }),
  defineRoute({
    method: "POST",
    path: "/v1/subscriptioncalculator",
    summary: "Price subscriptions without buying them",
    description:
      "Same input and validation as buying; nothing is bought or reserved. Answers what would be bought, each object with its `price`, without ids. `customer` may be omitted: a customer-scoped key prices for its customer, a partner's key for no customer (`customer: null`), as nothing priced depends on one.",
    tag,
    auth: partners,
    body: PurchaseRequest,
    bodyExample: examples.purchaseRequest,
    responses: { 200: { description: "Priced", schema: QuoteOut, example: examples.quote } },
    errors: {
      bad_request:
        "Invalid objects (`errors` names each field, an unknown customer included), or an operator pricing without a partner's key",
      not_found: "With a customer-scoped key: another customer",
    },
    async handle({ env, principal, body }) {
      const planned = await plan(
        env,
        actingPartner(principal),
        withCustomers(principal, body.objects),
        now(),
      );
      return {
        status: 200,
        body: {
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
        },
      };
    },
  }),
  listRoute(
    "/v1/subscriptions",
    "List subscriptions",
    "Oldest first, from the read model; `status`, `resource` (ids or aliases) and `customer` narrow the list. A partner's own; the operator's, every partner's.",
    false,
  ),
  listRoute(
    "/v1/groupedsubscriptions",
    "List the first subscription of each extension chain",
    "`descendants` lists each chain's extensions; `end_time`, `status` and `auto_renew` are the chain's: the end of its terms as they run (a cancelled extension adds nothing) and its last subscription's flag while that lasts. A partner's own; the operator's, every partner's.",
    true,
  ),
  // CloudSigma's `detail/` lists (pycloudsigma's `list_detail()`): a list here already answers
  // whole objects, so each is its list under another name.
  listRoute(
    "/v1/subscriptions/detail",
    "List subscriptions, whole (CloudSigma's detail list)",
    "The same as `GET /v1/subscriptions/`.",
    false,
  ),
  listRoute(
    "/v1/groupedsubscriptions/detail",
    "List extension chains, whole (CloudSigma's detail list)",
    "The same as `GET /v1/groupedsubscriptions/`.",
    true,
  ),
  defineRoute({
    method: "GET",
    path: "/v1/subscriptions/{id}",
    summary: "Read a subscription",
    description:
      "From its object, so a read follows every write that answered before it (read-your-writes). Answers a strong `ETag`, for `If-Match` on its changes (and `If-None-Match`: 304).",
    tag,
    auth: partners,
    params: IdParams,
    responses: {
      200: {
        description: "The subscription",
        schema: SubscriptionOut,
        headers: ETAG,
        example: examples.subscription,
      },
    },
    async handle({ env, principal, params }) {
      const { json, etag } = untagJson(await readSubscription(env, scopeOf(principal), params.id, now()));
      return taggedText(json, etag);
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
    async: true,
    ifMatch: true,
    responses: {
      200: {
        description: "Cancelled",
        schema: SubscriptionOut,
        headers: { ...SUBSCRIPTION_LOCATION, ...ETAG },
        example: {
          ...examples.subscription,
          // A subscription that has ended is expired (statusOf), whatever its times say.
          status: "expired",
          ended_at: "2026-12-15T12:00:00.000Z",
          end_reason: "cancelled",
        },
      },
      202: ACCEPTED,
    },
    errors: { conflict: "The subscription's purchase is still in progress" },
    async handle({ env, request, principal, params }) {
      const record = await visibleRecord(env, scopeOf(principal), params.id);
      const answer = await respond(env, request, {
        kind: "cancel",
        partnerId: record.partnerId,
        customerId: record.customerId,
        at: now().toISOString(),
        subscription: record.id,
        ...(await expectedVersion(env, request, record)),
      });
      return answer;
    },
  }),
  defineRoute({
    method: "POST",
    path: "/v1/subscriptions/{id}/action",
    summary: "Extend, toggle auto-renewal, start or stop (`?do=`)",
    description: `\`extend\`: buys the next term of the chain (body: optional \`period\` or \`end_time\`). \`auto_renew\`: toggles, or sets \`auto_renew\` from the body, on this term and the terms after it in its chain. \`start\`/\`stop\`: run a CaaS cloud (no body). The values are read from the body only: a member the action does not read answers 400, and so does any query parameter but \`do\` (\`?do=auto_renew&auto_renew=false\` would otherwise toggle). A JSON \`null\` body is no body. With \`If-Match\` (an ETag of \`GET /v1/subscriptions/{id}\`, or \`*\`): 412 if the subscription changed since it was read, checked when the request is accepted (for a toggle, also in its object).${ASYNC}`,
    tag,
    auth: partners,
    params: IdParams,
    query: ActionQuery,
    body: ActionBody,
    bodyExample: { period: "1 month" },
    async: true,
    ifMatch: true,
    responses: {
      200: {
        description:
          "The subscription (for extend: the new one). A toggle, a start or a stop answers its subscription's new `ETag`.",
        schema: SubscriptionOut,
        headers: { ...SUBSCRIPTION_LOCATION, ...ETAG },
        example: examples.subscription,
      },
      202: ACCEPTED,
    },
    errors: {
      conflict: "The chain was cancelled, the subscription has ended, or it cannot start or stop now",
      over_limit: "An extension over quota",
    },
    async handle({ env, request, principal, params, query, body }) {
      const stray = Object.entries(body).flatMap(([member, value]) =>
        value === undefined || ACTION_MEMBERS[query.do].some((m) => m === member) ? [] : [member],
      );
      if (stray.length > 0) {
        const message = `not read by ?do=${query.do}`;
        throw badRequest(
          `/${stray[0]}: ${message}`,
          stray.map((member) => ({ point: `/${member}`, message })),
        );
      }
      const record = await visibleRecord(env, scopeOf(principal), params.id);
      // A stale If-Match answers 412 before anything is accepted; a toggle also applies only to it.
      const condition = await expectedVersion(env, request, record);
      const at = now();
      const common = {
        partnerId: record.partnerId,
        customerId: record.customerId,
        at: at.toISOString(),
        subscription: record.id,
      };
      switch (query.do) {
        case "extend": {
          // Charged whenever it runs: queued, or resumed by its key after a price change.
          const price = await acceptedPrice(env, record);
          // Checked before it is accepted (its term, and what it would cost) on the chain's last
          // term only: a term something follows is not what is extended (the chain is walked to
          // its end, which checks it then).
          if (record.nextId === null) plannedAfter(record, price, body, continuesFrom(record, at, false));
          return respond(env, request, {
            kind: "extend",
            ...common,
            ...(body.period !== undefined ? { period: body.period } : {}),
            ...(body.end_time !== undefined ? { endTime: body.end_time.toISOString() } : {}),
            ids: { subscription: subscriptionIdBeside(record.id), order: uuidv7() },
            price,
          });
        }
        case "auto_renew":
          // A toggle flips the chain's flag, the one that decides its renewal: as it stands when the
          // toggle applies, on the chain's last term, once under its reference (run twice, it flips
          // once); `value`, the flag flipped now, is what it sets on an earlier term.
          return respond(env, request, {
            kind: "auto_renew",
            ...common,
            value: body.auto_renew ?? !(await chainAutoRenew(env, record)),
            ...(body.auto_renew === undefined ? { toggle: uuidv7() } : {}),
            ...condition,
          });
        case "start":
        case "stop": {
          const refusal = runRefusal(record, query.do, at);
          if (refusal) throw refused(refusal);
          return respond(env, request, { kind: "run", ...common, action: query.do, ref: uuidv7() });
        }
      }
    },
  }),
];
