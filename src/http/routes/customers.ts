import type * as v from "valibot";
import { owningPartner } from "../../app/acting";
import { visibleCustomer } from "../../app/customers";
import { newIdFor } from "../../app/intents";
import { scopeOf } from "../../app/reads";
import { type Customer, createCustomer, listCustomers, updateCustomer } from "../../db/customers";
import { findResource } from "../../db/resources";
import { badRequest, notFound } from "../../domain/errors";
import { baseSourceOf } from "../../domain/holders";
import { ledgerOf } from "../../objects/quota-ledger";
import { IdParams, IssuedCredentialOut, KeyRequest } from "../../schemas/common";
import {
  CreateCustomer,
  CustomerOut,
  CustomerPageOut,
  ListCustomersQuery,
  UpdateCustomer,
} from "../../schemas/customers";
import { HoldingOut, HoldingsOut, SetLimit } from "../../schemas/operator";
import { issueAnew } from "../auth";
import { inEffect, matched, preconditionFailed, tagged } from "../conditional";
import * as examples from "../examples";
import { byId, type PageWindow, pagedAnswer, pageWindow, toPage, wholeList } from "../pagination";
import { ETAG, LOCATION } from "../reply";
import { defineRoute } from "../route";

/** Customers (quota holders): partners manage their own, operators everyone's. */

const tag = "Customers";
const partnerOrOperator = ["operator", "partner"] as const;

/**
 * Issuing a credential that stands for one customer: the user token of the quota API (`customer`)
 * or the customer-scoped key of `/v1` (`account`). They are distinct roles, so a user's token
 * reads quotas and never buys.
 */
function customerCredentialRoute(
  role: "customer" | "account",
  path: string,
  summary: string,
  description: string,
  label: string,
) {
  return defineRoute({
    method: "POST",
    path,
    secret: true,
    summary,
    description,
    tag,
    auth: partnerOrOperator,
    params: IdParams,
    body: KeyRequest,
    bodyExample: { label },
    responses: {
      201: {
        description: "The credential; its `token` is shown only here",
        schema: IssuedCredentialOut,
        headers: LOCATION,
        example: examples.credentialOf(role),
      },
    },
    async handle({ env, request, principal, params, body }) {
      const c = await visibleCustomer(env, principal, params.id);
      const token = await issueAnew(env, {
        id: await newIdFor(request),
        role,
        partnerId: c.partnerId,
        subjectId: c.id,
        label: body.label ?? null,
      });
      return { status: 201, body: token, headers: { Location: `/v1/customers/${c.id}` } };
    },
  });
}

const customerOut = (c: Customer): v.InferOutput<typeof CustomerOut> => ({
  id: c.id,
  partner: c.partnerId,
  name: c.name,
  email: c.email,
  user_name: c.userName,
  phone: c.phone,
  address: (c.address as Record<string, string> | null) ?? null,
  created_at: c.createdAt,
});

export const customerRoutes = [
  defineRoute({
    method: "POST",
    path: "/v1/customers",
    summary: "Create a customer",
    description: "Partners create their own customers; operators name the `partner`.",
    tag,
    auth: partnerOrOperator,
    body: CreateCustomer,
    bodyExample: { name: "Demo Customer", email: "ops@example.com" },
    responses: {
      201: { description: "Created", schema: CustomerOut, headers: LOCATION, example: examples.customer },
    },
    errors: { not_found: "An operator named a partner that does not exist" },
    async handle({ env, request, principal, body }) {
      const partnerId = await owningPartner(env, principal, body.partner);
      const c = await createCustomer(env, {
        id: await newIdFor(request),
        partnerId,
        name: body.name,
        email: body.email,
        userName: body.user_name ?? null,
        phone: body.phone ?? null,
        address: body.address ?? null,
      });
      return { status: 201, body: customerOut(c), headers: { Location: `/v1/customers/${c.id}` } };
    },
  }),
  defineRoute({
    method: "GET",
    path: "/v1/customers",
    summary: "List customers",
    description: "Oldest first. Partners see their own customers; the operator everyone's.",
    tag,
    auth: partnerOrOperator,
    query: ListCustomersQuery,
    responses: {
      200: {
        description: "A page of customers",
        schema: CustomerPageOut,
        example: { objects: [examples.customer], meta: { limit: 50, next_cursor: null } },
      },
    },
    async handle({ env, principal, query }) {
      const scope = scopeOf(principal).partnerId;
      const page = async (window: PageWindow) => {
        const { rows, total } = await listCustomers(env, scope, window.after, window.offset, window.limit);
        return toPage(rows, window, (c) => c.id, customerOut, total);
      };
      return { status: 200, ...(await pagedAnswer(pageWindow(query, byId), page)) };
    },
  }),
  defineRoute({
    method: "GET",
    path: "/v1/customers/{id}",
    summary: "Read a customer",
    description: "Another partner's customer does not exist for the caller (404).",
    tag,
    auth: partnerOrOperator,
    params: IdParams,
    responses: {
      200: { description: "The customer", schema: CustomerOut, headers: ETAG, example: examples.customer },
    },
    async handle({ env, principal, params }) {
      return tagged(customerOut(await visibleCustomer(env, principal, params.id)));
    },
  }),
  defineRoute({
    method: "PATCH",
    path: "/v1/customers/{id}",
    summary: "Update a customer's name, e-mail or details",
    description:
      "Only `name`, `email`, `user_name`, `phone` and `address` change; any other member is a 400. With `If-Match` (an ETag of `GET /v1/customers/{id}`, or `*`): 412 if the customer changed since; the check is part of the update.",
    tag,
    auth: partnerOrOperator,
    params: IdParams,
    body: UpdateCustomer,
    bodyExample: { email: "billing@example.com" },
    ifMatch: true,
    responses: {
      200: { description: "The customer", schema: CustomerOut, headers: ETAG, example: examples.customer },
    },
    async handle({ env, request, principal, params, body }) {
      const current = await visibleCustomer(env, principal, params.id);
      const condition = await matched(request, () => customerOut(current), current.version);
      const { user_name, ...rest } = body;
      const changes = { ...rest, ...(user_name !== undefined ? { userName: user_name } : {}) };
      const updated = await updateCustomer(env, params.id, changes, condition?.compared);
      if (updated) return tagged(customerOut(updated));
      // It was just read: not there at the version compared, it changed in between; by this
      // request's first attempt, if that is when it was compared and the change is in effect.
      if (!condition) throw notFound(`customer ${params.id} does not exist`);
      const now = condition.recalled ? await visibleCustomer(env, principal, params.id) : undefined;
      if (now && inEffect(now, changes)) return tagged(customerOut(now));
      throw preconditionFailed();
    },
  }),
  customerCredentialRoute(
    "customer",
    "/v1/customers/{id}/tokens",
    "Issue a user token for a customer",
    "The token is the customer's `X-Auth-Token` for `GET /account/v1.0/quotas`, and nothing else: it cannot buy or read on `/v1` (a customer-scoped API key does that: `POST /v1/customers/{id}/api-keys`). Shown once.",
    "quota dashboard",
  ),
  customerCredentialRoute(
    "account",
    "/v1/customers/{id}/api-keys",
    "Issue a customer-scoped API key",
    "A key (role `account`, `acc.…`) that acts as this one customer on `/v1`, as a CloudSigma account does (`X-Api-Key`, Bearer, or the HTTP Basic password): purchases and the calculator are for this customer (`customer` may be omitted; another answers 404); its subscriptions, orders, operations, charges and statements are all it sees (another customer's answer 404, lists and `meta.total_count` leave them out); partner and operator routes, webhooks, the vendor API and the quota API refuse it (403; 401 on the quota API). Its requests count against the partner's rate-limit tier, per key, and its `Idempotency-Key`s are its own. Shown once.",
    "cloudsigma client",
  ),
  defineRoute({
    method: "PUT",
    path: "/v1/customers/{id}/quotas",
    summary: "Set a customer's limit for a (source, resource)",
    description:
      "The customer's own holding: its base project, whichever name `source` gives it (`system`, the default, the customer's id, or `project:<customer id>`: one holding). A member's limit on another project is set with `PUT /v1/projects/{id}/members/{customer}/quotas`; any other source answers 400. Creates the holding if needed. Lowering a limit below usage is allowed; pending commissions still resolve.",
    tag: "Operator",
    auth: ["operator"],
    params: IdParams,
    body: SetLimit,
    bodyExample: { source: "system", resource: "cyclades.vm", limit: 2 },
    responses: { 200: { description: "The holding", schema: HoldingOut, example: examples.holding } },
    errors: { not_found: "No such customer, or the resource is not registered" },
    async handle({ env, principal, params, body }) {
      const c = await visibleCustomer(env, principal, params.id);
      const source = baseSourceOf(c.id, body.source);
      if (source === null) {
        const message = `a customer's limit is on its base project (\`system\`); a project member's is set with PUT /v1/projects/{id}/members/{customer}/quotas`;
        throw badRequest(`source is not customer ${c.id}'s base project`, [{ point: "/source", message }]);
      }
      if (!(await findResource(env, body.resource))) {
        throw notFound("resource is not registered");
      }
      const h = await ledgerOf(env, c.id).setLimit(source, body.resource, body.limit);
      return { status: 200, body: { holder: c.id, ...h } };
    },
  }),
  defineRoute({
    method: "GET",
    path: "/v1/customers/{id}/quotas",
    summary: "A customer's holdings",
    description:
      "Each (source, resource) the customer holds quota on, with its limit, usage and pending quantity.",
    tag,
    auth: partnerOrOperator,
    params: IdParams,
    responses: {
      200: { description: "Holdings", schema: HoldingsOut, example: wholeList([examples.holding]) },
    },
    async handle({ env, principal, params }) {
      const c = await visibleCustomer(env, principal, params.id);
      const holdings = await ledgerOf(env, c.id).holdings();
      return { status: 200, body: wholeList(holdings.map((h) => ({ holder: c.id, ...h }))) };
    },
  }),
];
