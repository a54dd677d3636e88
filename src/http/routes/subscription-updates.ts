import { present, scopeOf, visibleRecord } from "../../app/reads";
import { badRequest, refused } from "../../domain/errors";
import { uuidv7 } from "../../domain/ids";
import { amountChangeRefusal } from "../../domain/refusals";
import type { SubscriptionRecord } from "../../domain/subscriptions";
import { IdParams } from "../../schemas/common";
import { ReplaceRequest, SubscriptionOut, UpdateRequest } from "../../schemas/subscriptions";
import { ifMatch } from "../conditional";
import * as examples from "../examples";
import { fieldsOf, isTime } from "../fields";
import { ACCEPTED, respond } from "../operations";
import { ETAG } from "../reply";
import { defineRoute } from "../route";

/**
 * Changing a subscription: PATCH with the fields to change, or PUT with the whole object as read
 * (what CloudSigma's clients send), both one app path.
 */

const tag = "Subscriptions";
/** A customer-scoped key changes its own customer's subscriptions too (`scopeOf`). */
const partners = ["partner", "operator", "account"] as const;
const now = () => new Date();

export const ASYNC =
  " With `Prefer: respond-async`: 202 Accepted, `Location: /v1/operations/{opRef}` and `Retry-After`; the operation then answers what this would have.";

export const IF_MATCH =
  " With `If-Match` (an ETag of `GET /v1/subscriptions/{id}`, or `*`): 412 if the subscription changed since; the check and the change are one step in its object.";

/** Where a write's Location points once the work is done. */
export const SUBSCRIPTION_LOCATION = {
  Location: { description: "The subscription.", required: true },
} as const;

/**
 * The version a write applies to when its If-Match names a tag: the one compared, so a change in
 * between answers 412 (`SubscriptionObject.change`).
 */
export async function expectedVersion(env: Env, request: Request, record: SubscriptionRecord) {
  const compared = await ifMatch(request, () => present(env, record, now()));
  return compared ? { expectedVersion: record.version } : {};
}

interface Change {
  amount?: number | undefined;
  auto_renew?: boolean | undefined;
}

async function update(env: Env, request: Request, record: SubscriptionRecord, change: Change) {
  const condition = await expectedVersion(env, request, record);
  const refusal = change.amount === undefined ? null : amountChangeRefusal(record, change.amount);
  if (refusal) throw refused(refusal);
  return respond(env, request, {
    kind: "update",
    partnerId: record.partnerId,
    customerId: record.customerId,
    at: now().toISOString(),
    subscription: record.id,
    ...(change.amount !== undefined ? { amount: change.amount, ref: uuidv7() } : {}),
    ...(change.auto_renew !== undefined ? { autoRenew: change.auto_renew } : {}),
    ...condition,
  });
}

const FIELDS = fieldsOf(SubscriptionOut, "output");
const WRITABLE: ReadonlySet<string> = new Set(Object.keys(UpdateRequest.entries));

/** Whether a value sent for `field` is the one a read answers: times as instants, not as text. */
function same(field: string, sent: unknown, read: unknown): boolean {
  const schema = FIELDS[field];
  if (schema && isTime(schema) && typeof sent === "string" && typeof read === "string") {
    return Date.parse(sent) === Date.parse(read);
  }
  return JSON.stringify(sent) === JSON.stringify(read);
}

const UPDATE_ERRORS = {
  conflict:
    "An amount on a prepaid subscription, or auto_renew turned on where nothing would renew (the subscription has ended, or its chain was cancelled after it)",
  over_limit: "A CaaS cloud's quantity up, over quota",
} as const;

const UPDATED = {
  description: "Updated",
  schema: SubscriptionOut,
  headers: { ...SUBSCRIPTION_LOCATION, ...ETAG },
  example: { ...examples.subscription, auto_renew: true },
} as const;

export const subscriptionUpdateRoutes = [
  defineRoute({
    method: "PATCH",
    path: "/v1/subscriptions/{id}",
    summary: "Change auto_renew, or a CaaS cloud's quantity (amount)",
    description: `A CaaS cloud's quantity up holds the difference on the customer's quota (409, quota-exceeded, if over), down releases it, and its metering splits the running interval. Every other kind is prepaid: only auto_renew changes, and an amount answers 409 (buy another subscription, or extend). Other fields are immutable.${IF_MATCH}${ASYNC}`,
    tag,
    auth: partners,
    params: IdParams,
    body: UpdateRequest,
    bodyExample: { auto_renew: true },
    async: true,
    ifMatch: true,
    responses: { 200: UPDATED, 202: ACCEPTED },
    errors: { bad_request: "An immutable or invalid field", ...UPDATE_ERRORS },
    async handle({ env, request, principal, params, body }) {
      const record = await visibleRecord(env, scopeOf(principal), params.id);
      return update(env, request, record, body);
    },
  }),
  defineRoute({
    method: "PUT",
    path: "/v1/subscriptions/{id}",
    summary: "Change a subscription by sending it back as read",
    description: `What CloudSigma's clients send to update: the object as \`GET /v1/subscriptions/{id}\` answers it (any of its fields). Read-only fields equal to what a read answers now are ignored (times compared as instants); one that differs answers 400 naming it, and nothing changes. \`amount\` and \`auto_renew\` apply as PATCH applies them, when they differ.${IF_MATCH}${ASYNC}`,
    tag,
    auth: partners,
    params: IdParams,
    body: ReplaceRequest,
    bodyExample: { ...examples.subscription, auto_renew: true },
    async: true,
    ifMatch: true,
    responses: { 200: UPDATED, 202: ACCEPTED },
    errors: {
      bad_request: "A read-only field that differs from the subscription's, or an invalid field",
      ...UPDATE_ERRORS,
    },
    async handle({ env, request, principal, params, body }) {
      const record = await visibleRecord(env, scopeOf(principal), params.id);
      const read: Record<string, unknown> = { ...(await present(env, record, now())) };
      const changed = Object.entries(body).filter(
        ([field, value]) => !WRITABLE.has(field) && !same(field, value, read[field]),
      );
      if (changed.length > 0) {
        throw badRequest(
          `only ${[...WRITABLE].join(" and ")} can change`,
          changed.map(([field]) => ({
            point: `/${field}`,
            message: `is read-only: the subscription has ${JSON.stringify(read[field])}`,
          })),
        );
      }
      return update(env, request, record, {
        amount: body.amount === read.amount ? undefined : body.amount,
        auto_renew: body.auto_renew === read.auto_renew ? undefined : body.auto_renew,
      });
    },
  }),
];
