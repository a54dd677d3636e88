import { allPartnerCustomerIds } from "../db/customers";
import { allPartnerProjectIds, ownProjects } from "../db/projects";
import { badRequest } from "../domain/errors";
import { BASE_SOURCE, OWN_SOURCE, projectLedger, projectOfSource } from "../domain/holders";
import { MAX_LISTED_HOLDERS, MAX_SERVICE_HOLDERS } from "../domain/quota";
import type { HoldingView } from "../objects/ledger-holdings";
import { ledgerOf } from "../objects/quota-ledger";

/**
 * The quota API's reads, answering both dialects in one document (README, "Using astakosclient").
 * A user's base project appears twice: as the spec's `system` and under the project's id (the
 * customer's); any other project under its id; a source of neither kind under its own name.
 * Entries keyed by a project id also carry that project's own numbers (`project_limit`,
 * `project_usage`, `project_pending`), as Astakos ≥ 0.15 answers them.
 */

interface Counts {
  usage: number;
  limit: number;
  pending: number;
}
interface ProjectCounts {
  project_limit: number;
  project_usage: number;
  project_pending: number;
}
export type Quotas = Record<string, Record<string, Counts | (Counts & ProjectCounts)>>;
export type ProjectQuotas = Record<string, Record<string, ProjectCounts>>;

const counts = (h: HoldingView): Counts => ({ usage: h.usage, limit: h.limit, pending: h.pending });
const projectCounts = (h: HoldingView | undefined): ProjectCounts => ({
  project_limit: h?.limit ?? 0,
  project_usage: h?.usage ?? 0,
  project_pending: h?.pending ?? 0,
});

/** Projects' own holdings as one request has read them so far: each project's ledger read once. */
export type ProjectReads = Map<string, Promise<Map<string, HoldingView>>>;

/** The own holdings of each (non-base) project, by resource: one ledger read each, none twice in `reads`. */
async function ownHoldings(
  env: Env,
  projects: readonly string[],
  reads: ProjectReads = new Map(),
): Promise<Map<string, Map<string, HoldingView>>> {
  const entries = await Promise.all(
    projects.map(async (id) => {
      let read = reads.get(id);
      if (!read) {
        read = ledgerOf(env, projectLedger(id))
          .holdings()
          .then((all) => new Map(all.filter((h) => h.source === OWN_SOURCE).map((h) => [h.resource, h])));
        reads.set(id, read);
      }
      return [id, await read] as const;
    }),
  );
  return new Map(entries);
}

/**
 * Refuses to read `holders` ledgers in one request past `MAX_SERVICE_HOLDERS`, before reading any:
 * the invocation would fail half-way. Astakos has no paging here; a `?user=` list pages instead.
 */
export function withinServiceBound(holders: number, filter: "user" | "project"): void {
  if (holders <= MAX_SERVICE_HOLDERS) return;
  throw badRequest(
    `the partner has ${holders} holders, more than one answer reads (${MAX_SERVICE_HOLDERS}): name them with ?${filter}=a,b,… (at most ${MAX_LISTED_HOLDERS} each)`,
  );
}

/**
 * One user's quotas on the resources `keep` lets through, in both dialects. `memberOf`: only these
 * projects besides its base project (Astakos's `/quotas` reads the sources of the user's accepted
 * memberships only: a project it left is not its quota any more).
 */
export async function userQuotas(
  env: Env,
  user: string,
  keep: (resource: string) => boolean = () => true,
  memberOf?: ReadonlySet<string>,
  reads?: ProjectReads,
): Promise<Quotas> {
  const ofMember = (source: string) => {
    const project = projectOfSource(user, source);
    return !memberOf || project === null || project === user || memberOf.has(project);
  };
  const holdings = (await ledgerOf(env, user).holdings()).filter(
    (h) => keep(h.resource) && ofMember(h.source),
  );
  const others = new Set<string>();
  for (const h of holdings) {
    const project = projectOfSource(user, h.source);
    if (project !== null && project !== user) others.add(project);
  }
  const own = others.size > 0 ? await ownHoldings(env, [...others], reads) : new Map();
  const out: Quotas = {};
  const put = (key: string, resource: string, value: Counts) => {
    const bySource = out[key] ?? {};
    bySource[resource] = value;
    out[key] = bySource;
  };
  for (const h of holdings) {
    const project = projectOfSource(user, h.source);
    if (h.source === BASE_SOURCE) {
      put(BASE_SOURCE, h.resource, counts(h));
      put(user, h.resource, { ...counts(h), ...projectCounts(h) });
    } else if (project !== null) {
      put(project, h.resource, { ...counts(h), ...projectCounts(own.get(project)?.get(h.resource)) });
    } else {
      put(h.source, h.resource, counts(h));
    }
  }
  return out;
}

/** Keeps the entries of the listed projects: a base project's under both of its keys. */
export function ofProjects(user: string, quotas: Quotas, projects: readonly string[]): Quotas {
  const wanted = new Set(projects);
  return Object.fromEntries(
    Object.entries(quotas).filter(([key]) => wanted.has(key) || (key === BASE_SOURCE && wanted.has(user))),
  );
}

/**
 * The own holdings of a partner's projects (`ids`, or all of them: its customers' base projects
 * and its projects), on the resources `keep` lets through; projects with none are left out.
 */
export async function projectQuotas(
  env: Env,
  partnerId: string,
  ids: readonly string[] | undefined,
  keep: (resource: string) => boolean,
): Promise<ProjectQuotas> {
  let bases: string[];
  let projects: string[];
  if (ids) {
    const kinds = await ownProjects(env, partnerId, ids);
    bases = ids.filter((id) => kinds.get(id) === "base");
    projects = ids.filter((id) => kinds.get(id) === "project");
  } else {
    [bases, projects] = await Promise.all([
      allPartnerCustomerIds(env, partnerId),
      allPartnerProjectIds(env, partnerId),
    ]);
    withinServiceBound(bases.length + projects.length, "project");
  }
  const [baseEntries, own] = await Promise.all([
    Promise.all(
      bases.map(async (id) => {
        // A base project's own holding is its one member's `system` holding.
        const mine = (await ledgerOf(env, id).holdings()).filter((h) => h.source === BASE_SOURCE);
        return [id, new Map(mine.map((h) => [h.resource, h]))] as const;
      }),
    ),
    ownHoldings(env, projects),
  ]);
  const out: ProjectQuotas = {};
  for (const [id, byResource] of [...baseEntries, ...own]) {
    const entry: Record<string, ProjectCounts> = {};
    for (const [resource, h] of byResource) if (keep(resource)) entry[resource] = projectCounts(h);
    if (Object.keys(entry).length > 0) out[id] = entry;
  }
  return out;
}
