import type * as v from "valibot";
import { owningPartner } from "../../app/acting";
import { newIdFor } from "../../app/intents";
import {
  join,
  leave,
  type ProjectView,
  setMemberLimit,
  setProjectLimit,
  visibleProject,
  visibleProjectHead,
} from "../../app/projects";
import { createProject } from "../../db/projects";
import type { HoldingView } from "../../objects/ledger-holdings";
import { IdParams } from "../../schemas/common";
import {
  AddMember,
  CreateProject,
  MemberParams,
  ProjectHoldingOut,
  ProjectOut,
  SetProjectLimit,
} from "../../schemas/projects";
import { LOCATION } from "../reply";
import { defineRoute } from "../route";

/** Projects (Astakos's, Synnefo ≥ 0.15): partners manage their own, operators everyone's. */

const tag = "Customers";
const partnerOrOperator = ["operator", "partner"] as const;
const projectId = "0193a4f0-0000-7000-8000-0000000000f1";
const memberId = "0193a4f0-0000-7000-8000-000000000101";

const projectOut = (p: ProjectView): v.InferOutput<typeof ProjectOut> => ({
  id: p.id,
  partner: p.partnerId,
  name: p.name,
  base: p.base,
  members: p.members,
  created_at: p.createdAt,
});

const exampleProject = {
  id: projectId,
  partner: "0193a4f0-0000-7000-8000-0000000000a1",
  name: "research",
  base: false,
  members: [memberId],
  created_at: "2026-01-05T12:00:00.000Z",
};

const holdingOut = (
  holder: string,
  source: string | null,
  h: HoldingView,
): v.InferOutput<typeof ProjectHoldingOut> => ({
  holder,
  source,
  resource: h.resource,
  limit: h.limit,
  usage: h.usage,
  pending: h.pending,
});

export const projectRoutes = [
  defineRoute({
    method: "POST",
    path: "/v1/projects",
    summary: "Create a project",
    description:
      "A quota holder with members: its own limits cap what all its members hold of it together. Partners create their own; operators name the `partner`. Every customer also has a base project, its id the customer's, which is not created.",
    tag,
    auth: partnerOrOperator,
    body: CreateProject,
    bodyExample: { name: "research" },
    responses: {
      201: {
        description: "Created",
        schema: ProjectOut,
        headers: LOCATION,
        example: { ...exampleProject, members: [] },
      },
    },
    errors: { not_found: "An operator named a partner that does not exist" },
    async handle({ env, request, principal, body }) {
      const partnerId = await owningPartner(env, principal, body.partner);
      const p = await createProject(env, { id: await newIdFor(request), partnerId, name: body.name });
      const out = projectOut({ ...p, base: false, members: [] });
      return { status: 201, body: out, headers: { Location: `/v1/projects/${p.id}` } };
    },
  }),
  defineRoute({
    method: "GET",
    path: "/v1/projects/{id}",
    summary: "Read a project and its members",
    description:
      "A customer's id reads its base project. Another partner's project does not exist for the caller (404).",
    tag,
    auth: partnerOrOperator,
    params: IdParams,
    responses: { 200: { description: "The project", schema: ProjectOut, example: exampleProject } },
    async handle({ env, principal, params }) {
      return { status: 200, body: projectOut(await visibleProject(env, principal, params.id)) };
    },
  }),
  defineRoute({
    method: "POST",
    path: "/v1/projects/{id}/members",
    summary: "Add a member to a project",
    description:
      "A customer of the project's partner. It holds nothing of the project until its member limit is set (`PUT /v1/projects/{id}/members/{customer}/quotas`). Adding a member again changes nothing.",
    tag,
    auth: partnerOrOperator,
    params: IdParams,
    body: AddMember,
    bodyExample: { customer: memberId },
    responses: { 200: { description: "The project", schema: ProjectOut, example: exampleProject } },
    errors: {
      not_found: "No such project or customer",
      conflict: "A base project: its only member is its customer",
    },
    async handle({ env, principal, params, body }) {
      const project = await visibleProject(env, principal, params.id);
      return { status: 200, body: projectOut(await join(env, project, body.customer)) };
    },
  }),
  defineRoute({
    method: "DELETE",
    path: "/v1/projects/{id}/members/{customer}",
    summary: "Remove a member from a project",
    description:
      "Its holdings of the project get limit 0 and keep their usage: what it holds is still released as usual, nothing more can be issued.",
    tag,
    auth: partnerOrOperator,
    params: MemberParams,
    responses: { 204: { description: "Removed" } },
    errors: {
      not_found: "No such project, or the customer is not a member",
      conflict: "A base project: its only member is its customer",
    },
    async handle({ env, request, principal, params }) {
      await leave(env, request, await visibleProjectHead(env, principal, params.id), params.customer);
      return { status: 204 };
    },
  }),
  defineRoute({
    method: "PUT",
    path: "/v1/projects/{id}/quotas",
    summary: "Set a project's own limit for a resource",
    description:
      "The cap over what all members together hold of the project (Astakos's project holding, source null). On a base project it is its customer's `system` limit, which only the operator sets (a partner: 403).",
    tag,
    auth: partnerOrOperator,
    params: IdParams,
    body: SetProjectLimit,
    bodyExample: { resource: "cyclades.vm", limit: 50 },
    responses: {
      200: {
        description: "The project's holding",
        schema: ProjectHoldingOut,
        example: {
          holder: `project:${projectId}`,
          source: null,
          resource: "cyclades.vm",
          limit: 50,
          usage: 3,
          pending: 0,
        },
      },
    },
    errors: { not_found: "No such project, or the resource is not registered" },
    async handle({ env, principal, params, body }) {
      const project = await visibleProjectHead(env, principal, params.id);
      const h = await setProjectLimit(env, principal, project, body.resource, body.limit);
      return { status: 200, body: holdingOut(`project:${project.id}`, null, h) };
    },
  }),
  defineRoute({
    method: "PUT",
    path: "/v1/projects/{id}/members/{customer}/quotas",
    summary: "Set what one member may hold of a project",
    description:
      "The member's holding of the project (holder `user:<customer>`, source `project:<id>`). On a base project it is the customer's `system` holding, which only the operator sets (a partner: 403).",
    tag,
    auth: partnerOrOperator,
    params: MemberParams,
    body: SetProjectLimit,
    bodyExample: { resource: "cyclades.vm", limit: 20 },
    responses: {
      200: {
        description: "The member's holding",
        schema: ProjectHoldingOut,
        example: {
          holder: `user:${memberId}`,
          source: `project:${projectId}`,
          resource: "cyclades.vm",
          limit: 20,
          usage: 1,
          pending: 0,
        },
      },
    },
    errors: { not_found: "No such project, the customer is not a member, or the resource is not registered" },
    async handle({ env, principal, params, body }) {
      const project = await visibleProjectHead(env, principal, params.id);
      const h = await setMemberLimit(env, principal, project, params.customer, body.resource, body.limit);
      return { status: 200, body: holdingOut(`user:${params.customer}`, `project:${project.id}`, h) };
    },
  }),
];
