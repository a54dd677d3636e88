import type * as v from "valibot";
import { newIdFor } from "../../app/intents";
import { revokeCredential } from "../../db/credentials";
import {
  createPartner,
  createService,
  findPartner,
  findService,
  type Partner,
  type Service,
  updatePartner,
} from "../../db/partners";
import { findResource, listResources, type Resource, upsertResource } from "../../db/resources";
import { STRATUS_SERVICE } from "../../domain/catalog";
import { AppError, badRequest, notFound } from "../../domain/errors";
import { CredentialOut, IdParams, IssuedCredentialOut, KeyRequest } from "../../schemas/common";
import {
  CreatePartner,
  CreateResource,
  CreateService,
  PartnerOut,
  ResourceListOut,
  ResourceOut,
  ResourceParams,
  ServiceOut,
  UpdatePartner,
} from "../../schemas/operator";
import { NoParameters } from "../../schemas/pagination";
import { forgetCredential, forgetPartnerCredentials, issueAnew } from "../auth";
import { inEffect, matched, preconditionFailed, tagged } from "../conditional";
import * as examples from "../examples";
import { wholeList } from "../pagination";
import { ETAG, LOCATION } from "../reply";
import { defineRoute } from "../route";

/** Operator endpoints: the catalog of resources, partners and their keys, services and their tokens. */

const tag = "Operator";
const operator = ["operator"] as const;

export const operatorRoutes = [
  defineRoute({
    method: "POST",
    path: "/v1/partners",
    summary: "Create a partner",
    description: "A reseller: its API keys, customers, services and subscriptions are its own.",
    tag,
    auth: operator,
    body: CreatePartner,
    bodyExample: { name: "Demo Partner", rate_limit: "standard" },
    responses: {
      201: { description: "Created", schema: PartnerOut, headers: LOCATION, example: examples.partnerOut },
    },
    async handle({ env, request, body }) {
      const p = await createPartner(env, await newIdFor(request), body.name, body.rate_limit);
      return { status: 201, body: partnerOut(p), headers: { Location: `/v1/partners/${p.id}` } };
    },
  }),
  defineRoute({
    method: "GET",
    path: "/v1/partners/{id}",
    summary: "Read a partner",
    description: "Its name and rate-limit tier.",
    tag,
    auth: operator,
    params: IdParams,
    responses: {
      200: { description: "The partner", schema: PartnerOut, headers: ETAG, example: examples.partnerOut },
    },
    async handle({ env, params }) {
      const p = await findPartner(env, params.id);
      if (!p) throw notFound(`partner ${params.id} does not exist`);
      return tagged(partnerOut(p));
    },
  }),
  defineRoute({
    method: "PATCH",
    path: "/v1/partners/{id}",
    summary: "Rename a partner or change its rate-limit tier",
    description:
      "A new `rate_limit` applies to every credential of the partner within 30 s (at once on the " +
      "Worker instance that served the change); the new tier's window starts empty. With `If-Match` " +
      "(an ETag of `GET /v1/partners/{id}`, or `*`): 412 if the partner changed since; the check is " +
      "part of the update.",
    tag,
    auth: operator,
    params: IdParams,
    body: UpdatePartner,
    bodyExample: { rate_limit: "raised" },
    ifMatch: true,
    responses: {
      200: {
        description: "The partner",
        schema: PartnerOut,
        headers: ETAG,
        example: { ...examples.partnerOut, rate_limit: "raised" },
      },
    },
    async handle({ env, request, params, body }) {
      const current = await findPartner(env, params.id);
      if (!current) throw notFound(`partner ${params.id} does not exist`);
      const { name, rateLimit } = current;
      const condition = await matched(request, () => partnerOut(current), { name, rateLimit });
      const changes = {
        ...(body.name !== undefined ? { name: body.name } : {}),
        ...(body.rate_limit !== undefined ? { rateLimit: body.rate_limit } : {}),
      };
      const updated = await updatePartner(env, params.id, changes, condition?.compared);
      // It was just read: not there as compared, it changed in between; by this request's first
      // attempt, if that is when it was compared and the change is in effect.
      const now = !updated && condition?.recalled ? await findPartner(env, params.id) : undefined;
      const p = updated ?? (now && inEffect(now, changes) ? now : undefined);
      if (!p) throw condition ? preconditionFailed() : notFound(`partner ${params.id} does not exist`);
      if (body.rate_limit !== undefined) forgetPartnerCredentials(p.id);
      return tagged(partnerOut(p));
    },
  }),
  defineRoute({
    method: "POST",
    path: "/v1/partners/{id}/api-keys",
    secret: true,
    summary: "Issue an API key for a partner",
    description: "The key (`X-Api-Key`, or `Authorization: Bearer`) is shown once, in this answer.",
    tag,
    auth: operator,
    params: IdParams,
    body: KeyRequest,
    bodyExample: { label: "billing system" },
    responses: {
      201: {
        description: "The key",
        schema: IssuedCredentialOut,
        headers: LOCATION,
        example: examples.credential,
      },
    },
    async handle({ env, request, params, body }) {
      if (!(await findPartner(env, params.id))) throw notFound(`partner ${params.id} does not exist`);
      const key = await issueAnew(env, {
        id: await newIdFor(request),
        role: "partner",
        partnerId: params.id,
        subjectId: params.id,
        label: body.label ?? null,
      });
      return { status: 201, body: key, headers: { Location: `/v1/partners/${params.id}` } };
    },
  }),
  defineRoute({
    method: "DELETE",
    path: "/v1/credentials/{id}",
    summary: "Revoke a credential",
    description:
      "Any key or token, by its `id` (the one its issue answered, also the part of the token before the secret): a partner key, a service, user or vendor token, a customer's account key. It authenticates nothing from then on: at once on the instance that took the request, within 30 s everywhere (README, \"Credentials\"). A partner revokes its own partner's credentials (its keys, its services' and customers' tokens); the operator any. Revoking again answers the same.",
    tag,
    auth: ["operator", "partner"],
    params: IdParams,
    responses: {
      200: {
        description: "The credential, revoked",
        schema: CredentialOut,
        example: examples.revokedCredential,
      },
    },
    errors: { not_found: "No such credential, or not the partner's" },
    async handle({ env, principal, params }) {
      const partner = principal.role === "operator" ? null : principal.partnerId;
      // Forgotten whatever comes of it: a revocation that landed before D1 (or the request) failed
      // applies at once here too, not once the row kept here runs out.
      const revoked = await revokeCredential(env, params.id, partner, new Date()).finally(() =>
        forgetCredential(params.id),
      );
      if (!revoked) throw notFound(`credential ${params.id} does not exist`);
      return {
        status: 200,
        body: {
          id: revoked.id,
          role: revoked.role,
          label: revoked.label,
          created_at: revoked.createdAt,
          revoked_at: revoked.revokedAt,
        },
      };
    },
  }),
  defineRoute({
    method: "POST",
    path: "/v1/services",
    summary: "Register a service of a partner",
    description: "A service issues commissions against the quotas of its partner's customers.",
    tag,
    auth: operator,
    body: CreateService,
    bodyExample: { partner: examples.partnerOut.id, name: "cyclades" },
    responses: {
      201: { description: "Created", schema: ServiceOut, headers: LOCATION, example: examples.service },
    },
    errors: {
      not_found: "No such partner",
      conflict:
        "A service of that name exists already, of this partner or another (a resource belongs to the service it names)",
    },
    async handle({ env, request, body }) {
      if (!(await findPartner(env, body.partner))) throw notFound(`partner ${body.partner} does not exist`);
      const s = await createService(env, await newIdFor(request), body.partner, body.name);
      if (!s) throw new AppError("conflict", `a service named ${body.name} exists already`);
      return { status: 201, body: serviceOut(s), headers: { Location: `/v1/services/${s.id}` } };
    },
  }),
  defineRoute({
    method: "GET",
    path: "/v1/services/{id}",
    summary: "Read a service",
    description: "What `POST /v1/services` answered, found again (its `Location`).",
    tag,
    auth: operator,
    params: IdParams,
    responses: {
      200: { description: "The service", schema: ServiceOut, headers: ETAG, example: examples.service },
    },
    async handle({ env, params }) {
      const s = await findService(env, params.id);
      if (!s) throw notFound(`service ${params.id} does not exist`);
      return tagged(serviceOut(s));
    },
  }),
  defineRoute({
    method: "POST",
    path: "/v1/services/{id}/tokens",
    secret: true,
    summary: "Issue a service token",
    description: "The service's `X-Auth-Token` for the quota API; shown once, in this answer.",
    tag,
    auth: operator,
    params: IdParams,
    body: KeyRequest,
    bodyExample: { label: "cyclades controller" },
    responses: {
      201: {
        description: "The token",
        schema: IssuedCredentialOut,
        headers: LOCATION,
        example: examples.credentialOf("service"),
      },
    },
    async handle({ env, request, params, body }) {
      const service = await findService(env, params.id);
      if (!service) throw notFound(`service ${params.id} does not exist`);
      const token = await issueAnew(env, {
        id: await newIdFor(request),
        role: "service",
        partnerId: service.partnerId,
        subjectId: service.id,
        label: body.label ?? null,
      });
      return { status: 201, body: token, headers: { Location: `/v1/services/${service.id}` } };
    },
  }),
  defineRoute({
    method: "PUT",
    path: "/v1/resources/{name}",
    summary: "Register (or update) a quota resource",
    description:
      "A resource belongs to the service that commissions it (`service`); stratus's own products hold quota on resources of service `stratus`. A registered resource keeps its service (409 to change it: what its holders hold was commissioned by that service), and every `stratus.*` name is stratus's (400 for another service).",
    tag,
    auth: operator,
    params: ResourceParams,
    body: CreateResource,
    bodyExample: { service: "cyclades", unit: null, description: "Virtual machines" },
    responses: { 200: { description: "The resource", schema: ResourceOut, example: examples.resource } },
    errors: {
      bad_request: "Invalid body, or a `stratus.*` name for another service than `stratus`",
      conflict: "The resource is registered to another service",
    },
    async handle({ env, params, body }) {
      const refusal = resourceOwnerRefusal(params.name, body.service, await findResource(env, params.name));
      if (refusal) throw refusal;
      const r = await upsertResource(env, {
        name: params.name,
        unit: body.unit,
        description: body.description,
        service: body.service,
        allowInProjects: body.allow_in_projects,
      });
      if (!r) {
        // Registered to another service since the check read it (or the check read a replica behind).
        const current = await findResource(env, params.name);
        throw (
          resourceOwnerRefusal(params.name, body.service, current) ??
          new AppError("conflict", `resource ${params.name} belongs to another service: it keeps its service`)
        );
      }
      return { status: 200, body: resourceOut(r) };
    },
  }),
  defineRoute({
    method: "GET",
    path: "/v1/resources",
    summary: "List quota resources",
    description: "Every registered resource, by name. It takes no query parameter: any one answers 400.",
    tag,
    auth: ["operator", "partner"],
    query: NoParameters,
    responses: {
      200: { description: "Resources", schema: ResourceListOut, example: wholeList([examples.resource]) },
    },
    async handle({ env }) {
      return { status: 200, body: wholeList((await listResources(env)).map(resourceOut)) };
    },
  }),
];

/**
 * Why `name` cannot be registered to `service`, if it cannot. Quota is moved only by its owner
 * (README, "Recovery", invariant 4): a resource moved to another service would let that service's
 * commissions release what subscriptions (or the first service's commissions) hold.
 */
function resourceOwnerRefusal(name: string, service: string, current: Resource | undefined): AppError | null {
  if (name.startsWith(`${STRATUS_SERVICE}.`) && service !== STRATUS_SERVICE) {
    return badRequest(`${name} is a name of stratus's own resources`, [
      {
        point: "/service",
        message: `a ${STRATUS_SERVICE}.* resource belongs to service "${STRATUS_SERVICE}"`,
      },
    ]);
  }
  if (current && current.service !== service) {
    return new AppError(
      "conflict",
      `resource ${name} belongs to service ${current.service}: what its holders hold was commissioned by it, so it keeps its service`,
    );
  }
  return null;
}

function serviceOut(s: Service): v.InferOutput<typeof ServiceOut> {
  return { id: s.id, partner: s.partnerId, name: s.name, created_at: s.createdAt };
}

function partnerOut(p: Partner): v.InferOutput<typeof PartnerOut> {
  return { id: p.id, name: p.name, rate_limit: p.rateLimit, created_at: p.createdAt };
}

function resourceOut(r: Resource): v.InferOutput<typeof ResourceOut> {
  return {
    name: r.name,
    unit: r.unit,
    description: r.description,
    service: r.service,
    allow_in_projects: r.allowInProjects,
  };
}
