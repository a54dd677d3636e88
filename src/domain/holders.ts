import type { Provision } from "./quota";

/**
 * The two dialects of Astakos holders, and where each holding lives.
 *
 * The spec's (project-less) dialect names a holder by its UUID and a source by name, `system` for
 * what the holder gets by default. Synnefo ≥ 0.15 names holders `user:<uuid>` and
 * `project:<uuid>`: a member's holding has source `project:<uuid>`, a project's own holding (the
 * cap over all its members) has source null. Every customer has a base project whose id is the
 * customer's: `system` is that base project, so both dialects name the same holding.
 *
 * Each holding is kept by one ledger: a user's (old or new name) by the ledger named by the UUID,
 * under source `system` (base project) or `project:<uuid>`; a project's own holdings by the ledger
 * `project:<uuid>`, under source `OWN_SOURCE`. A base project has one member, its customer, and
 * its own holding is that member's: it is not kept twice.
 */

/** A provision as a client sends it: a project's own holding has source null. */
export interface WireProvision {
  holder: string;
  source: string | null;
  resource: string;
  quantity: number;
}

export const BASE_SOURCE = "system";
/** Where a project's ledger keeps its own holdings: no source on the wire is empty. */
export const OWN_SOURCE = "";

const USER = "user:";
const PROJECT = "project:";

export type Holder = { kind: "user"; id: string } | { kind: "project"; id: string };

/** `user:<id>` and a bare id are users; `project:<id>` is a project. */
export function parseHolder(holder: string): Holder {
  if (holder.startsWith(PROJECT)) return { kind: "project", id: holder.slice(PROJECT.length) };
  return { kind: "user", id: holder.startsWith(USER) ? holder.slice(USER.length) : holder };
}

/** The name of a project's ledger. */
export const projectLedger = (projectId: string) => `${PROJECT}${projectId}`;

/** The source a member's holding of `projectId` has in its ledger. */
export const memberSource = (user: string, projectId: string) =>
  projectId === user ? BASE_SOURCE : `${PROJECT}${projectId}`;

/**
 * The holding a customer's limit is set on when `source` names it: its base project, whatever the
 * dialect calls it (`system`, the customer's id, `project:<its id>`). Null for any other source: a
 * member's holding of another project is that project's to set (its membership and its partner
 * are checked there), and a free-form name would make a holding no quota view shows.
 */
export function baseSourceOf(customerId: string, source: string): typeof BASE_SOURCE | null {
  const named = source.startsWith(PROJECT) ? source.slice(PROJECT.length) : source;
  return source === BASE_SOURCE || named === customerId ? BASE_SOURCE : null;
}

/** The project a user's ledger source stands for (its base project for `system`), or null. */
export function projectOfSource(user: string, source: string): string | null {
  if (source === BASE_SOURCE) return user;
  return source.startsWith(PROJECT) ? source.slice(PROJECT.length) : null;
}

/** A provision naming a user by its bare id and a source that is no project: held as named. */
const inSpecDialect = (p: WireProvision): p is Provision =>
  p.source !== null &&
  !p.source.startsWith(PROJECT) &&
  !p.holder.startsWith(USER) &&
  !p.holder.startsWith(PROJECT);

const sameHolding = (a: Provision, b: Provision) =>
  a.holder === b.holder && a.source === b.source && a.resource === b.resource;

export type Routed =
  | {
      ok: true;
      /** One per wire provision a ledger holds (a base project's own ones are their member's). */
      provisions: Provision[];
      /** The wire provision each one came from: what a refusal names. */
      from: WireProvision[];
      /** Whether any provision was named otherwise than its ledger names it. */
      renamed: boolean;
    }
  | { ok: false; message: string }
  /**
   * A holding no ledger keeps (a user's without a source, or in another customer's base project):
   * Astakos has no such holding either and answers NoHoldingError (404), not a refusal of the
   * commission's form.
   */
  | { ok: false; missing: WireProvision };

/**
 * Where each provision is held. `isBase(id)`: the project is a customer's base project. A base
 * project's own provision moves with its member's: it is accepted only beside the member's
 * provision of the same resource and quantity, which is then the one held. Any other project's
 * cap holds only if what its members take is taken from it too: its members' provisions of a
 * resource must add up to its own provision of it, as astakosclient's `mk_provisions` pairs them.
 */
export function routeProvisions(
  wire: readonly WireProvision[],
  isBase: (projectId: string) => boolean,
  /** Whether the project is the issuer's partner's: an unknown one is the ledger's to refuse (404). */
  isProject: (projectId: string) => boolean = () => true,
): Routed {
  // The spec's dialect, the common case, is held as it is named.
  if (wire.every(inSpecDialect)) return { ok: true, provisions: [...wire], from: [...wire], renamed: false };
  const provisions: Provision[] = [];
  const from: WireProvision[] = [];
  const baseOwn: WireProvision[] = [];
  let renamed = false;
  for (const w of wire) {
    const holder = parseHolder(w.holder);
    let held: Provision;
    if (holder.kind === "project") {
      if (w.source === null && isBase(holder.id)) {
        baseOwn.push(w);
        renamed = true;
        continue;
      }
      held = { ...w, holder: projectLedger(holder.id), source: w.source ?? OWN_SOURCE };
    } else {
      if (w.source === null) return { ok: false, missing: w };
      const project = parseHolder(w.source);
      // A base project's one member is its customer: another user holds nothing of it (Astakos:
      // NoHoldingError, which services read as "not a member", not a malformed commission).
      if (project.kind === "project" && project.id !== holder.id && isBase(project.id)) {
        return { ok: false, missing: w };
      }
      const source = project.kind === "project" ? memberSource(holder.id, project.id) : w.source;
      held = { ...w, holder: holder.id, source };
    }
    if (held.holder !== w.holder || held.source !== w.source) renamed = true;
    provisions.push(held);
    from.push(w);
  }
  for (const own of baseOwn) {
    const id = parseHolder(own.holder).id;
    const member = { holder: id, source: BASE_SOURCE, resource: own.resource, quantity: own.quantity };
    const paired = provisions.some((p, i) => sameHolding(p, member) && from[i]?.quantity === own.quantity);
    if (!paired) {
      return {
        ok: false,
        message: `${own.holder} is ${id}'s base project, whose own holding is its member's: send the member's provision (holder user:${id}, source ${own.holder}, ${own.resource} ${own.quantity}) beside it`,
      };
    }
  }
  const unpaired = unpairedProject(wire, (id) => isProject(id) && !isBase(id));
  if (unpaired) return { ok: false, message: unpaired };
  return { ok: true, provisions, from, renamed };
}

/**
 * The first (project, resource) of a `capped` project whose members' provisions do not add up to
 * the project's own provision, told as the refusal says it; null when every one does.
 */
function unpairedProject(
  wire: readonly WireProvision[],
  capped: (projectId: string) => boolean,
): string | null {
  const members = new Map<string, number>();
  const own = new Map<string, number>();
  const key = (project: string, resource: string) => `${project}\u0000${resource}`;
  for (const w of wire) {
    const holder = parseHolder(w.holder);
    if (holder.kind === "project" && w.source === null && capped(holder.id)) {
      const k = key(holder.id, w.resource);
      own.set(k, (own.get(k) ?? 0) + w.quantity);
    } else if (holder.kind === "user" && w.source !== null) {
      const project = parseHolder(w.source);
      if (project.kind !== "project" || project.id === holder.id || !capped(project.id)) continue;
      const k = key(project.id, w.resource);
      members.set(k, (members.get(k) ?? 0) + w.quantity);
    }
  }
  for (const k of new Set([...members.keys(), ...own.keys()])) {
    const [project, resource] = k.split("\u0000") as [string, string];
    const taken = members.get(k) ?? 0;
    const capped = own.get(k) ?? 0;
    if (taken !== capped) {
      return `project:${project}'s ${resource}: its members' provisions add up to ${taken}, its own provision (holder project:${project}, source null) to ${capped}; what members take is taken from the project's cap, so the two must be equal`;
    }
  }
  return null;
}
