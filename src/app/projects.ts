import type { Principal } from "../db/credentials";
import { findCustomer } from "../db/customers";
import { addMember, findProject, memberGeneration, projectMemberIds, removeMember } from "../db/projects";
import { findResource } from "../db/resources";
import { STRATUS_SERVICE } from "../domain/catalog";
import { AppError, badRequest, notFound } from "../domain/errors";
import { BASE_SOURCE, memberSource, OWN_SOURCE, projectLedger } from "../domain/holders";
import type { HoldingView } from "../objects/ledger-holdings";
import { ledgerOf } from "../objects/quota-ledger";
import { choiceFor } from "./intents";

/**
 * Projects as the operator and partners manage them (domain/holders.ts): membership in D1, every
 * number in the quota ledgers. A customer's base project (id = the customer's) has no row: its
 * only member is its customer, and its limits are the customer's `system` ones.
 */

export interface ProjectView {
  id: string;
  partnerId: string;
  name: string;
  base: boolean;
  members: string[];
  createdAt: string;
}

/** A project without its members: what a limit change or a removal needs of it. */
export type ProjectHead = Omit<ProjectView, "members">;

/**
 * Operators see every project; a partner its own (and its customers' base projects), others do
 * not exist. Without its members: a project may have thousands, a row each to read.
 */
export async function visibleProjectHead(env: Env, principal: Principal, id: string): Promise<ProjectHead> {
  const partner = principal.role === "operator" ? null : principal.partnerId;
  const project = await findProject(env, id, partner);
  if (project) return { ...project, base: false };
  const customer = await findCustomer(env, id, partner);
  if (!customer) throw notFound(`project ${id} does not exist`);
  return {
    id,
    partnerId: customer.partnerId,
    name: customer.name,
    base: true,
    createdAt: customer.createdAt,
  };
}

/** `visibleProjectHead`, with its members. */
export async function visibleProject(env: Env, principal: Principal, id: string): Promise<ProjectView> {
  const project = await visibleProjectHead(env, principal, id);
  return { ...project, members: project.base ? [id] : await projectMemberIds(env, id) };
}

function notOfBase(project: ProjectHead): void {
  if (project.base) {
    throw new AppError(
      "conflict",
      `project ${project.id} is a customer's base project: its only member is its customer`,
    );
  }
}

/** A customer of the project's partner joins it (again: nothing changes). */
export async function join(env: Env, project: ProjectView, customerId: string): Promise<ProjectView> {
  notOfBase(project);
  if (!(await findCustomer(env, customerId, project.partnerId))) {
    throw notFound(`customer ${customerId} does not exist`);
  }
  const generation = await addMember(env, project.id, customerId);
  // A member that left had its source closed: its limits may be set again (it keeps limit 0 until
  // then). A join of a member being removed opens nothing once the removal closed its membership:
  // answered 200, it would list a member whose every limit change answers 404.
  if (!(await ledgerOf(env, customerId).openSource(memberSource(customerId, project.id), generation))) {
    throw new AppError(
      "conflict",
      `customer ${customerId} is being removed from project ${project.id}: once its removal has answered (send it again if it failed), add it again`,
    );
  }
  return { ...project, members: [...new Set([...project.members, customerId])].sort() };
}

/**
 * A member leaves: its holdings of the project keep their usage (what it holds is released as
 * usual) but get limit 0, as Astakos does for a membership that ends. Its ledger closes that
 * membership (its generation) before the membership row goes: a request that fails in between
 * leaves a member holding limit 0, which its retry removes; the other way round, the retry found no
 * member (404) and the customer kept its limits on the project. Once closed, a limit change or a
 * join already past its membership check sets and opens nothing; and the row goes only if it is
 * still that membership's, so a removal that comes late, after the customer joined again, ends
 * nothing of the new membership (before, it closed the new member's ledger, or, closing it a
 * second time after the row went, the ledger of a customer that had joined again meanwhile).
 * Under an Idempotency-Key the membership removed is recorded with the key: a retry of a removal
 * that died after taking the row answers as the removal did (before, 404).
 */
export async function leave(
  env: Env,
  request: Request,
  project: ProjectHead,
  customerId: string,
): Promise<void> {
  notOfBase(project);
  const notMember = () => notFound(`customer ${customerId} is not a member of project ${project.id}`);
  const { value: generation, recalled } = await choiceFor(request, async () => {
    const found = await memberGeneration(env, project.id, customerId);
    if (found === null) throw notMember();
    return found;
  });
  await ledgerOf(env, customerId).closeSource(memberSource(customerId, project.id), generation);
  // Another removal may have taken the row meanwhile: that one answers it, unless it was this
  // request's own first attempt.
  if (!(await removeMember(env, project.id, customerId, generation)) && !recalled) throw notMember();
}

/**
 * Refuses a limit on `resource` in `project` unless it is registered and, outside a customer's
 * base project (its `system`), allowed in projects: Astakos's `allow_in_projects`, and never one
 * of stratus's own, which subscriptions hold on the customer and no service commissions.
 */
async function registered(env: Env, resource: string, project: ProjectHead): Promise<void> {
  const found = await findResource(env, resource);
  if (!found) throw notFound("resource is not registered");
  if (project.base) return;
  if (!found.allowInProjects || found.service === STRATUS_SERVICE) {
    const message = found.allowInProjects
      ? `is one of stratus's own resources, held on customers, not projects`
      : "is not allowed in projects (allow_in_projects is false)";
    throw badRequest(`resource ${message}`, [{ point: "/resource", message }]);
  }
}

/**
 * A customer's base project's limits are its `system` ones, which only the operator sets (`PUT
 * /v1/customers/{id}/quotas`): through the project, a partner would raise its own customers'.
 */
function mayLimit(by: Principal, project: ProjectHead): void {
  if (project.base && by.role !== "operator") {
    throw new AppError(
      "forbidden",
      `project ${project.id} is a customer's base project: its limits are the customer's, which the operator sets`,
    );
  }
}

/** The project's own limit: the cap over everything its members hold of it. */
export async function setProjectLimit(
  env: Env,
  by: Principal,
  project: ProjectHead,
  resource: string,
  limit: number,
): Promise<HoldingView> {
  mayLimit(by, project);
  await registered(env, resource, project);
  // A base project's own holding is its one member's.
  if (project.base) return ledgerOf(env, project.id).setLimit(BASE_SOURCE, resource, limit);
  return ledgerOf(env, projectLedger(project.id)).setLimit(OWN_SOURCE, resource, limit);
}

/** What one member may hold of the project. */
export async function setMemberLimit(
  env: Env,
  by: Principal,
  project: ProjectHead,
  customerId: string,
  resource: string,
  limit: number,
): Promise<HoldingView> {
  mayLimit(by, project);
  const notMember = () => notFound(`customer ${customerId} is not a member of project ${project.id}`);
  const generation = project.base ? null : await memberGeneration(env, project.id, customerId);
  if (project.base ? customerId !== project.id : generation === null) throw notMember();
  await registered(env, resource, project);
  const source = memberSource(customerId, project.id);
  if (generation === null) return ledgerOf(env, customerId).setLimit(source, resource, limit);
  // The member may have left since it was checked: its ledger, that membership closed by then, refuses the limit.
  const holding = await ledgerOf(env, customerId).setMemberLimit(source, generation, resource, limit);
  if (!holding) throw notMember();
  return holding;
}
