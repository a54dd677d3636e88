import type * as v from "valibot";
import { listPending, pendingCommission, resolveCommission, resolveMany } from "../../app/commissions";
import {
  ofProjects,
  type ProjectReads,
  projectQuotas,
  userQuotas,
  withinServiceBound,
} from "../../app/quota-views";
import type { Principal } from "../../db/credentials";
import { allPartnerCustomerIds, ownCustomers } from "../../db/customers";
import { findService, type Service } from "../../db/partners";
import { projectsOfMember } from "../../db/projects";
import { listResources, resourceNamesOfService } from "../../db/resources";
import { AppError, badRequest, notFound } from "../../domain/errors";
import { MAX_SERVICE_HOLDERS } from "../../domain/quota";
import { ttlCache } from "../../domain/ttl-cache";
import { issueCommission } from "../../objects/commission-issue";
import {
  type CloudFault,
  CommissionAction,
  CommissionOut,
  IssueCommission,
  QuotasOut,
  ResolveMany,
  ResolveManyOut,
  ResourcesOut,
  SerialOut,
  SerialParams,
  SerialsOut,
  ServiceProjectQuotasOut,
  ServiceProjectQuotasQuery,
  ServiceQuotasOut,
  ServiceQuotasQuery,
} from "../../schemas/quota";
import { cloudFault } from "../cloudfault";
import * as examples from "../examples";
import { defineRoute } from "../route";

/** The quota API, Astakos dialect: /account/v1.0. */

const tag = "Quota (Astakos)";
const base = "/account/v1.0";

/** Services never change once registered, so the calling one is remembered for a while. */
const recentServices = ttlCache<Service>(60_000);

async function callingService(env: Env, principal: Principal): Promise<Service> {
  const id = principal.subjectId;
  const service = id ? await recentServices(id, () => findService(env, id)) : undefined;
  if (!service) throw new AppError("unauthorized", "this token's service no longer exists");
  return service;
}

const now = () => new Date();

/**
 * Astakos's answer to a filter that found nothing of the service's: 404 naming the filter as it
 * was sent (quotas.py: "No user with UUID '<user>'"), which its callers take for "no such holder".
 */
const noneNamed = (kind: "user" | "project", ids: readonly string[]) =>
  notFound(`No ${kind} with UUID '${ids.join(",")}'`);

export const quotaRoutes = [
  defineRoute({
    method: "GET",
    path: `${base}/resources`,
    summary: "List the registered resources",
    description: "Every resource, by name, with the service it belongs to. Public.",
    tag,
    auth: null,
    responses: {
      200: { description: "Resources by name", schema: ResourcesOut, example: examples.quotaResources },
    },
    async handle({ env }) {
      const out: v.InferOutput<typeof ResourcesOut> = {};
      for (const r of await listResources(env)) {
        out[r.name] = {
          unit: r.unit,
          description: r.description,
          service: r.service,
          allow_in_projects: r.allowInProjects,
        };
      }
      return { status: 200, body: out };
    },
  }),
  defineRoute({
    method: "GET",
    path: `${base}/quotas`,
    summary: "The calling user's quotas, by source and resource",
    description:
      "With a user token (`X-Auth-Token`): the customer's holdings, as Astakos nests them, in both dialects: its base project under `system` (the spec's) and under its id (the customer's, with `project_*`), each other project of which it is a member under the project's id (with that project's own numbers in `project_*`).",
    tag,
    auth: ["customer"],
    responses: { 200: { description: "Quotas", schema: QuotasOut, example: examples.quotas } },
    async handle({ env, principal }) {
      const id = principal.subjectId;
      if (!id) return { status: 200, body: {} };
      // The projects it is a member of now: one it left keeps a holding (limit 0) but is not listed.
      const memberOf = new Set(await projectsOfMember(env, id));
      return { status: 200, body: await userQuotas(env, id, () => true, memberOf) };
    },
  }),
  defineRoute({
    method: "GET",
    path: `${base}/service_quotas`,
    summary: "Quotas of the calling service's resources, by holder",
    description:
      "Holders are the customers of the service's partner, each answered as `GET /quotas` answers it. `?user=<uuid>` narrows to one, `?user=a,b` to several (at most 100); a user that is not the partner's is left out, and a filter that leaves no holder answers 404 `itemNotFound`, as Astakos does. `?project=a,b` keeps those projects' entries (a base project's under `system` and its id).",
    tag,
    auth: ["service"],
    query: ServiceQuotasQuery,
    errors: {
      bad_request: `Invalid query, or no \`?user=\` while the partner has more holders than one answer reads (${MAX_SERVICE_HOLDERS})`,
      not_found: "`?user=` names no holder of the partner's with quotas of this service",
    },
    responses: {
      200: { description: "Quotas by holder", schema: ServiceQuotasOut, example: examples.serviceQuotas },
    },
    async handle({ env, principal, query }) {
      const service = await callingService(env, principal);
      const [mine, holders] = await Promise.all([
        resourceNamesOfService(env, service.name),
        query.user
          ? ownCustomers(env, service.partnerId, query.user).then((s) => [...s])
          : allPartnerCustomerIds(env, service.partnerId),
      ]);
      if (!query.user) withinServiceBound(holders.length, "user");
      // A project many holders are members of is read once for all of them.
      const reads: ProjectReads = new Map();
      const entries = await Promise.all(
        holders.map(async (holder) => {
          const quotas = await userQuotas(env, holder, (r) => mine.has(r), undefined, reads);
          return [holder, query.project ? ofProjects(holder, quotas, query.project) : quotas] as const;
        }),
      );
      const body = Object.fromEntries(entries.filter(([, q]) => Object.keys(q).length > 0));
      if (query.user && Object.keys(body).length === 0) throw noneNamed("user", query.user);
      return { status: 200, body };
    },
  }),
  defineRoute({
    method: "GET",
    path: `${base}/service_project_quotas`,
    summary: "Projects' own quotas of the calling service's resources, by project",
    description:
      "Each project of the service's partner (its own, and each customer's base project, whose id is the customer's) with its own holdings: `project_limit`, `project_usage`, `project_pending`. `?project=a,b` narrows to those (at most 100); a project that is not the partner's is left out, and a filter that leaves none answers 404 `itemNotFound`.",
    tag,
    auth: ["service"],
    query: ServiceProjectQuotasQuery,
    errors: {
      bad_request: `Invalid query, or no \`?project=\` while the partner has more projects (its customers' base projects included) than one answer reads (${MAX_SERVICE_HOLDERS})`,
      not_found: "`?project=` names no project of the partner's with quotas of this service",
    },
    responses: {
      200: {
        description: "Quotas by project",
        schema: ServiceProjectQuotasOut,
        example: {
          "0193a4f0-0000-7000-8000-0000000000f1": {
            "cyclades.vm": { project_limit: 50, project_usage: 3, project_pending: 1 },
          },
        },
      },
    },
    async handle({ env, principal, query }) {
      const service = await callingService(env, principal);
      const mine = await resourceNamesOfService(env, service.name);
      const body = await projectQuotas(env, service.partnerId, query.project, (r) => mine.has(r));
      if (query.project && Object.keys(body).length === 0) throw noneNamed("project", query.project);
      return { status: 200, body };
    },
  }),
  defineRoute({
    method: "POST",
    path: `${base}/commissions`,
    summary: "Issue a commission",
    description:
      "A service commissions only the resources registered to it (`service` in `/resources`); a provision on another service's resource refuses the whole commission with 400 `badRequest`, and nothing changes.",
    tag,
    auth: ["service"],
    body: IssueCommission,
    bodyExample: { name: "create a VM", force: false, auto_accept: false, provisions: [examples.provision] },
    responses: { 201: { description: "Issued", schema: SerialOut, example: { serial: 57 } } },
    errors: {
      bad_request: "Invalid input, or a resource of another service (`badRequest`)",
      not_found: "A holding does not exist (`itemNotFound`, `data.name` NoHoldingError)",
      conflict: "The commission was abandoned while it was being issued (`conflict`)",
      over_limit: "A limit would be exceeded or a usage fall below zero (`overLimit`)",
    },
    async handle({ env, principal, body }) {
      const service = await callingService(env, principal);
      const serial = await issueCommission(
        env,
        { serviceId: service.id, partnerId: service.partnerId, serviceName: service.name },
        {
          name: body.name ?? "",
          force: body.force,
          autoAccept: body.auto_accept,
          provisions: body.provisions,
        },
        now(),
      );
      return { status: 201, body: { serial } };
    },
  }),
  defineRoute({
    method: "GET",
    path: `${base}/commissions`,
    summary: "Serials of the calling service's pending commissions",
    description:
      "In serial order. Serials grow per holder (each holder's ledger hands them out from its own block), so across holders this is not the order they were issued in.",
    tag,
    auth: ["service"],
    responses: { 200: { description: "Serials", schema: SerialsOut, example: [57, 58] } },
    async handle({ env, principal }) {
      return { status: 200, body: await listPending(env, (await callingService(env, principal)).id) };
    },
  }),
  defineRoute({
    method: "GET",
    path: `${base}/commissions/{serial}`,
    summary: "Describe a pending commission",
    description: "Only the calling service's own, while pending.",
    tag,
    auth: ["service"],
    params: SerialParams,
    responses: {
      200: { description: "The commission", schema: CommissionOut, example: examples.commission },
    },
    errors: { not_found: "Not a pending commission of this service (`itemNotFound`)" },
    async handle({ env, principal, params }) {
      const row = await pendingCommission(env, (await callingService(env, principal)).id, params.serial);
      return {
        status: 200,
        body: { serial: row.serial, issue_time: row.issueTime, name: row.name, provisions: row.provisions },
      };
    },
  }),
  defineRoute({
    method: "POST",
    path: `${base}/commissions/{serial}/action`,
    summary: "Accept or reject a pending commission",
    description: 'Body `{"accept": ""}` or `{"reject": ""}`, exactly one of the two.',
    tag,
    auth: ["service"],
    params: SerialParams,
    body: CommissionAction,
    bodyExample: { accept: "" },
    responses: { 200: { description: "Resolved; no body" } },
    errors: {
      bad_request: "Both or neither of accept and reject (`badRequest`)",
      not_found: "Not pending for this service (`itemNotFound`)",
    },
    async handle({ env, principal, params, body }) {
      const accept = body.accept !== undefined;
      const reject = body.reject !== undefined;
      if (accept === reject) throw badRequest('exactly one of "accept" and "reject" is expected');
      const service = await callingService(env, principal);
      await resolveCommission(env, service.id, params.serial, accept ? "accept" : "reject");
      return { status: 200 };
    },
  }),
  defineRoute({
    method: "POST",
    path: `${base}/commissions/action`,
    summary: "Accept and reject several commissions",
    description:
      "Always 200: each serial is accepted, rejected or failed; `failed` pairs each failed serial with its cloudFault.",
    tag,
    auth: ["service"],
    body: ResolveMany,
    bodyExample: { accept: [57], reject: [59] },
    responses: {
      200: {
        description: "What was accepted, rejected, and what failed",
        schema: ResolveManyOut,
        example: examples.resolved,
      },
    },
    async handle({ env, principal, body }) {
      const service = await callingService(env, principal);
      const result = await resolveMany(env, service.id, body.accept, body.reject);
      return {
        status: 200,
        body: {
          accepted: result.accepted,
          rejected: result.rejected,
          failed: result.failed.map(([serial, error]): [number, v.InferOutput<typeof CloudFault>] => [
            serial,
            cloudFault(error),
          ]),
        },
      };
    },
  }),
];
