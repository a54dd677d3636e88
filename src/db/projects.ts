import { and, asc, eq, inArray, sql } from "drizzle-orm";
import { ttlCache } from "../domain/ttl-cache";
import { database, parameterChunks } from "./client";
import { partnerCustomerIds } from "./customers";
import { projectMembers, projects } from "./schema-projects";

export type Project = typeof projects.$inferSelect;

/** Creates project `input.id`, or answers it as it is: a resumed request creates it once. */
export async function createProject(
  env: Env,
  input: Pick<Project, "id" | "partnerId" | "name">,
): Promise<Project> {
  const created = await database(env).insert(projects).values(input).onConflictDoNothing().returning().get();
  const found = created ?? (await findProject(env, input.id, input.partnerId));
  if (!found) throw new Error(`project ${input.id} neither inserted nor found`);
  return found;
}

/** A project as seen by a partner (null: the operator): another partner's does not exist. */
export function findProject(env: Env, id: string, partnerId: string | null): Promise<Project | undefined> {
  const scope =
    partnerId === null ? eq(projects.id, id) : and(eq(projects.id, id), eq(projects.partnerId, partnerId));
  return database(env).select().from(projects).where(scope).get();
}

export async function projectMemberIds(env: Env, projectId: string): Promise<string[]> {
  const rows = await database(env)
    .select({ id: projectMembers.customerId })
    .from(projectMembers)
    .where(eq(projectMembers.projectId, projectId))
    .orderBy(asc(projectMembers.customerId))
    .all();
  return rows.map((r) => r.id);
}

/** The projects `customerId` is a member of, by id (its base project is not among them). */
export async function projectsOfMember(env: Env, customerId: string): Promise<string[]> {
  const rows = await database(env)
    .select({ id: projectMembers.projectId })
    .from(projectMembers)
    .where(eq(projectMembers.customerId, customerId))
    .orderBy(asc(projectMembers.projectId))
    .all();
  return rows.map((r) => r.id);
}

/**
 * The customer joins (again: nothing changes). Answers the membership's generation: a new one if
 * this join made the row, the one it had if the customer was a member already.
 */
export async function addMember(env: Env, projectId: string, customerId: string): Promise<string> {
  const row = await database(env)
    .insert(projectMembers)
    .values({ projectId, customerId, generation: crypto.randomUUID() })
    .onConflictDoUpdate({
      target: [projectMembers.projectId, projectMembers.customerId],
      set: { generation: sql`generation` },
    })
    .returning({ generation: projectMembers.generation })
    .get();
  if (!row) throw new Error(`membership of ${customerId} in ${projectId} neither inserted nor kept`);
  return row.generation;
}

/** Whether membership `generation` was still the customer's, and is gone now. */
export async function removeMember(
  env: Env,
  projectId: string,
  customerId: string,
  generation: string,
): Promise<boolean> {
  const gone = await database(env)
    .delete(projectMembers)
    .where(
      and(
        eq(projectMembers.projectId, projectId),
        eq(projectMembers.customerId, customerId),
        eq(projectMembers.generation, generation),
      ),
    )
    .returning()
    .all();
  return gone.length > 0;
}

/** The generation of the customer's membership, or null if it is no member. */
export async function memberGeneration(
  env: Env,
  projectId: string,
  customerId: string,
): Promise<string | null> {
  const row = await database(env)
    .select({ generation: projectMembers.generation })
    .from(projectMembers)
    .where(and(eq(projectMembers.projectId, projectId), eq(projectMembers.customerId, customerId)))
    .get();
  return row?.generation ?? null;
}

export async function allPartnerProjectIds(env: Env, partnerId: string): Promise<string[]> {
  const rows = await database(env)
    .select({ id: projects.id })
    .from(projects)
    .where(eq(projects.partnerId, partnerId))
    .orderBy(asc(projects.id))
    .all();
  return rows.map((r) => r.id);
}

export type ProjectKind = "base" | "project";

/**
 * What each id is known to be of a partner's: a customer's base project (the customer's id) or
 * a project. Neither ever changes partner or is deleted, so what was found stays true.
 */
const knownProjects = ttlCache<ProjectKind>(600_000);

/** Which of `ids` are the partner's projects, and of which kind; any other is left out. */
export async function ownProjects(
  env: Env,
  partnerId: string,
  ids: readonly string[],
): Promise<Map<string, ProjectKind>> {
  const key = (id: string) => `${partnerId}/${id}`;
  const found = await knownProjects.many(ids.map(key), async (missing) => {
    const prefix = key("").length;
    const wanted = missing.map((k) => k.slice(prefix));
    const kinds = new Map<string, ProjectKind>();
    for (const id of await partnerCustomerIds(env, partnerId, wanted)) kinds.set(key(id), "base");
    for (const chunk of parameterChunks(wanted, 1)) {
      const rows = await database(env)
        .select({ id: projects.id })
        .from(projects)
        .where(and(eq(projects.partnerId, partnerId), inArray(projects.id, chunk)))
        .all();
      for (const row of rows) kinds.set(key(row.id), "project");
    }
    return kinds;
  });
  const out = new Map<string, ProjectKind>();
  for (const id of ids) {
    const kind = found.get(key(id));
    if (kind) out.set(id, kind);
  }
  return out;
}
