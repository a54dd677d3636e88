import * as v from "valibot";
import { visibleCustomer } from "../../app/customers";
import { newIdFor } from "../../app/intents";
import { issueCredential } from "../../db/credentials";
import { type Customer, createCustomer, listCustomers, updateCustomer } from "../../db/customers";
import { findPartner } from "../../db/partners";
import { findResource } from "../../db/resources";
import { ledgerOf } from "../../objects/quota-ledger";
import { IdParams, IssuedCredentialOut, KeyRequest } from "../../schemas/common";
import { CreateCustomer, CustomerOut, ListCustomersQuery, UpdateCustomer } from "../../schemas/customers";
import { HoldingOut, SetLimit } from "../../schemas/operator";
import { pageMeta } from "../../schemas/pagination";
import { ifMatch, preconditionFailed, taggedJson } from "../conditional";
import { badRequest, notFound } from "../errors";
import { decodeCursor, toPage } from "../pagination";
import { defineRoute } from "../route";

/** Customers (quota holders): partners manage their own, operators everyone's. */

const tag = "Customers";
const partnerOrOperator = ["operator", "partner"] as const;

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
    responses: {
      201: { description: "Created", schema: CustomerOut },
      400: { description: "Invalid input" },
    },
    async handle({ env, request, principal, body }) {
      let partnerId = principal.partnerId;
      if (principal.role === "operator") {
        if (!body.partner)
          throw badRequest("partner is required", [{ point: "/partner", message: "is required" }]);
        if (!(await findPartner(env, body.partner))) throw notFound(`partner ${body.partner} does not exist`);
        partnerId = body.partner;
      } else if (body.partner && body.partner !== principal.partnerId) {
        throw badRequest("partner must be your own", [
          { point: "/partner", message: "must be your own partner id" },
        ]);
      }
      if (!partnerId) throw notFound("partner does not exist");
      const c = await createCustomer(env, {
        id: await newIdFor(request),
        partnerId,
        name: body.name,
        email: body.email,
        userName: body.user_name ?? null,
        phone: body.phone ?? null,
        address: body.address ?? null,
      });
      return Response.json(customerOut(c), { status: 201, headers: { location: `/v1/customers/${c.id}` } });
    },
  }),
  defineRoute({
    method: "GET",
    path: "/v1/customers",
    summary: "List customers",
    tag,
    auth: partnerOrOperator,
    query: ListCustomersQuery,
    responses: {
      200: {
        description: "A page of customers",
        schema: v.object({ objects: v.array(CustomerOut), meta: pageMeta }),
      },
    },
    async handle({ env, principal, query }) {
      const scope = principal.role === "operator" ? null : principal.partnerId;
      const rows = await listCustomers(env, scope, decodeCursor(query.cursor), query.limit);
      return Response.json(toPage(rows, query.limit, (c) => c.id, customerOut));
    },
  }),
  defineRoute({
    method: "GET",
    path: "/v1/customers/{id}",
    summary: "Read a customer",
    tag,
    auth: partnerOrOperator,
    params: IdParams,
    responses: {
      200: { description: "The customer", schema: CustomerOut },
      404: { description: "Not found" },
    },
    async handle({ env, principal, params }) {
      return taggedJson(customerOut(await visibleCustomer(env, principal, params.id)));
    },
  }),
  defineRoute({
    method: "PATCH",
    path: "/v1/customers/{id}",
    summary: "Update a customer's name or e-mail",
    description:
      "With `If-Match` (an ETag of `GET /v1/customers/{id}`, or `*`): 412 if the customer changed since; the check is part of the update.",
    tag,
    auth: partnerOrOperator,
    params: IdParams,
    body: UpdateCustomer,
    responses: {
      200: { description: "The customer", schema: CustomerOut },
      404: { description: "Not found" },
      412: { description: "If-Match does not match: the customer changed since it was read" },
    },
    async handle({ env, request, principal, params, body }) {
      const current = await visibleCustomer(env, principal, params.id);
      const compared = await ifMatch(request, () => customerOut(current));
      const { user_name, ...rest } = body;
      const updated = await updateCustomer(
        env,
        params.id,
        { ...rest, ...(user_name !== undefined ? { userName: user_name } : {}) },
        compared ? current.version : undefined,
      );
      // It was just read: not there at the version compared, it changed in between.
      if (!updated) throw compared ? preconditionFailed() : notFound(`customer ${params.id} does not exist`);
      return taggedJson(customerOut(updated));
    },
  }),
  defineRoute({
    method: "POST",
    path: "/v1/customers/{id}/tokens",
    summary: "Issue a user token for a customer (X-Auth-Token of GET /account/v1.0/quotas; shown once)",
    tag,
    auth: partnerOrOperator,
    params: IdParams,
    body: KeyRequest,
    responses: {
      201: { description: "The token", schema: IssuedCredentialOut },
      404: { description: "Not found" },
    },
    async handle({ env, request, principal, params, body }) {
      const c = await visibleCustomer(env, principal, params.id);
      const token = await issueCredential(env, {
        id: await newIdFor(request),
        role: "customer",
        partnerId: c.partnerId,
        subjectId: c.id,
        label: body.label ?? null,
      });
      return Response.json(token, { status: 201, headers: { location: `/v1/customers/${c.id}` } });
    },
  }),
  defineRoute({
    method: "PUT",
    path: "/v1/customers/{id}/quotas",
    summary: "Set a customer's limit for a (source, resource)",
    description:
      "Creates the holding if needed. Lowering a limit below usage is allowed; pending commissions still resolve.",
    tag: "Operator",
    auth: ["operator"],
    params: IdParams,
    body: SetLimit,
    responses: {
      200: { description: "The holding", schema: HoldingOut },
      404: { description: "No such customer or resource" },
    },
    async handle({ env, principal, params, body }) {
      const c = await visibleCustomer(env, principal, params.id);
      if (!(await findResource(env, body.resource))) {
        throw notFound(`resource ${body.resource} is not registered`);
      }
      const h = await ledgerOf(env, c.id).setLimit(body.source, body.resource, body.limit);
      return Response.json({ holder: c.id, ...h });
    },
  }),
  defineRoute({
    method: "GET",
    path: "/v1/customers/{id}/quotas",
    summary: "A customer's holdings",
    tag,
    auth: partnerOrOperator,
    params: IdParams,
    responses: { 200: { description: "Holdings", schema: v.object({ objects: v.array(HoldingOut) }) } },
    async handle({ env, principal, params }) {
      const c = await visibleCustomer(env, principal, params.id);
      const holdings = await ledgerOf(env, c.id).holdings();
      return Response.json({ objects: holdings.map((h) => ({ holder: c.id, ...h })) });
    },
  }),
];
