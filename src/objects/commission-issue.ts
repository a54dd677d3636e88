import { ownCustomers } from "../db/customers";
import { ownProjects, type ProjectKind } from "../db/projects";
import { listResources } from "../db/resources";
import { homeOf } from "../domain/commissions";
import { AppError, badRequest, notFound } from "../domain/errors";
import { parseHolder, routeProvisions, type WireProvision } from "../domain/holders";
import { mergeProvisions, type Provision } from "../domain/quota";
import { ttlCache } from "../domain/ttl-cache";
import type { RecoveryContext } from "./ledger-commissions";
import type { HoldFailure } from "./ledger-holdings";
import { ledgerOf } from "./quota-ledger";

/**
 * Issuing a commission, the client every writer of quota goes through (the quota API, purchases,
 * a subscription's own quota moves): checks what no ledger can (whose customers, whose resources),
 * then asks the commission's home ledger (`homeOf`: its first holder's), which takes it from there.
 */

/**
 * Who issues: stratus itself (`serviceId` null), holding quota for subscriptions on any resource,
 * or a service, which commissions only the resources registered to it (`resources.service` =
 * `serviceName`).
 */
export type Issuer =
  | { serviceId: null; partnerId: string }
  | { serviceId: string; partnerId: string; serviceName: string };

export interface IssueInput {
  name: string;
  force: boolean;
  autoAccept: boolean;
  /** In either dialect, mixed at will (domain/holders.ts). */
  provisions: WireProvision[];
  /**
   * What the commission is for. Issuing again with the reference of a live commission returns
   * that commission instead of holding the quota twice: retried work never double-charges.
   */
  reference?: string;
  /** What the recovery sweep settles a pending commission of stratus's own by, should its request die. */
  recovery?: RecoveryContext;
  /**
   * Nothing is issued while stratus's own commission `serial`, kept on the ledger this one is
   * issued to (`home`), is open: asked in the same ledger call (`CommissionOpen`).
   */
  unlessOpen?: { home: string; serial: number };
  /** A quota move's attempt: refused once the ledger has answered, by `reference`, that it was not made. */
  attempt?: string;
}

function failureError(provision: WireProvision, failure: HoldFailure): AppError {
  if (failure.name === "NoHoldingError") return noHolding(provision);
  const holding = `${provision.resource} of ${provision.holder} (${provision.source ?? "its own"})`;
  const message =
    failure.name === "NoCapacityError"
      ? `${holding}: usage ${failure.usage} + ${provision.quantity} exceeds limit ${failure.limit}`
      : `${holding}: releasing ${-provision.quantity} would bring usage below zero`;
  return new AppError("over_limit", message, {
    data: { provision, name: failure.name, limit: failure.limit, usage: failure.usage },
  });
}

function noHolding(provision: WireProvision): AppError {
  return notFound(`holding ${provision.holder}/${provision.source}/${provision.resource} does not exist`, {
    provision,
    name: "NoHoldingError",
  });
}

/**
 * The service each registered resource belongs to. Owners rarely change, so they are kept for a
 * while; a name not registered is not remembered, so a resource registered a moment ago is found.
 */
const ownerOfResource = ttlCache<string>(60_000);

/**
 * The first provision on a resource registered to another service than `serviceName`: one cached
 * lookup. An unregistered resource is nobody's; its holding does not exist, and the ledger says so.
 */
async function foreignProvision(
  env: Env,
  serviceName: string,
  provisions: readonly WireProvision[],
): Promise<WireProvision | undefined> {
  const owners = await ownerOfResource.many(
    [...new Set(provisions.map((p) => p.resource))],
    async () => new Map((await listResources(env)).map((r) => [r.name, r.service])),
  );
  return provisions.find((p) => {
    const owner = owners.get(p.resource);
    return owner !== undefined && owner !== serviceName;
  });
}

/**
 * Which holders the provisions name are the issuer's partner's: its customers (as users) and its
 * projects (each customer's base one included). Both lookups are cached: warm, no D1 read.
 */
async function knownHolders(env: Env, partnerId: string, provisions: readonly WireProvision[]) {
  const holders = provisions.map((p) => parseHolder(p.holder));
  const ids = (kind: "user" | "project") => [
    ...new Set(holders.filter((h) => h.kind === kind).map((h) => h.id)),
  ];
  // The projects members' provisions draw on are looked up too: their caps must be provisioned.
  const sourced = provisions.flatMap((p) => {
    const source = p.source === null ? null : parseHolder(p.source);
    return source?.kind === "project" ? [source.id] : [];
  });
  const projectIds = [...new Set([...ids("project"), ...sourced])];
  const [users, projects] = await Promise.all([
    ownCustomers(env, partnerId, ids("user")),
    projectIds.length > 0 ? ownProjects(env, partnerId, projectIds) : new Map<string, ProjectKind>(),
  ]);
  return {
    isBase: (id: string) => projects.get(id) === "base",
    isProject: (id: string) => projects.has(id),
    knows: (p: WireProvision) => {
      const h = parseHolder(p.holder);
      return h.kind === "user" ? users.has(h.id) : projects.has(h.id);
    },
  };
}

export async function issueCommission(
  env: Env,
  issuer: Issuer,
  input: IssueInput,
  now: Date,
): Promise<number> {
  const tooLarge = () => badRequest("the quantities of one holding add up beyond the safe-integer range");
  const wire = mergeProvisions(input.provisions);
  if (!wire) throw tooLarge();

  const service = issuer.serviceId === null ? null : issuer.serviceName;
  const [known, foreign] = await Promise.all([
    knownHolders(env, issuer.partnerId, wire),
    service === null ? undefined : foreignProvision(env, service, wire),
  ]);
  const stranger = wire.find((p) => !known.knows(p));
  if (stranger) throw noHolding(stranger);
  // Refused as Astakos refuses a well-formed commission it will not take (InvalidDataError: 400
  // badRequest), before any ledger is touched: no serial is taken and nothing is held.
  if (foreign) {
    throw badRequest(
      `resource ${foreign.resource} is not registered to service ${service}: a service commissions only its own resources`,
    );
  }
  const routed = routeProvisions(wire, known.isBase, known.isProject);
  if (!routed.ok) throw "missing" in routed ? noHolding(routed.missing) : badRequest(routed.message);
  // Both dialects may name one holding in one commission: it is held once, for their sum.
  const provisions = routed.renamed ? mergeProvisions(routed.provisions) : routed.provisions;
  if (!provisions) throw tooLarge();

  const home = homeOf(
    provisions.map((p) => p.holder),
    issuer.serviceId,
  );
  // Asked on another ledger, the commission would not be found there: taken for settled, not waited for.
  if (input.unlessOpen && input.unlessOpen.home !== home)
    throw new Error(
      `commission ${input.unlessOpen.serial} is not kept by ${home}, which this one is issued to`,
    );
  const answer = await ledgerOf(env, home).issue({
    home,
    serviceId: issuer.serviceId,
    reference: input.reference ?? null,
    name: input.name,
    provisions,
    ...(routed.renamed ? { shown: wire } : {}),
    force: input.force,
    autoAccept: input.autoAccept,
    issueTime: now.toISOString(),
    ...(input.recovery ? { recovery: input.recovery } : {}),
    ...(input.unlessOpen ? { unlessOpen: input.unlessOpen.serial } : {}),
    ...(input.attempt ? { attempt: input.attempt } : {}),
  });
  if (answer.ok) return answer.serial;
  switch (answer.reason) {
    case "refused":
      // Named as the client named it, with the quantity checked: both dialects' provisions of one
      // holding are checked as their sum.
      throw failureError(
        { ...blamed(answer.provision, routed.provisions, routed.from), quantity: answer.provision.quantity },
        answer.failure,
      );
    case "busy":
      // A retry racing its first attempt: not an answer, so the key keeps its work for the next try.
      throw new AppError(
        "unavailable",
        `commission ${input.reference} is being issued by another request; try again`,
      );
    case "abandoned":
      throw new AppError(
        "conflict",
        "the commission was abandoned while it was being issued; issue it again",
      );
    case "rejected":
      throw new CommissionRejected(input.reference ?? "");
    case "forsaken":
      // Its subscription was told the move was not made, and dropped its change.
      throw new AppError("conflict", `quota move ${input.reference} was given up by its subscription`);
    case "open":
      throw new CommissionOpen(answer.serial);
  }
}

/**
 * Issued again by the reference of a commission that was rejected: the work it was issued for was
 * given up (only stratus's own commissions are issued by reference: work retried after its undo).
 */
export class CommissionRejected extends AppError {
  constructor(reference: string) {
    super("conflict", `commission ${reference} was rejected: its work was given up`);
  }
}

/** Not issued: commission `serial`, which it waits on (`IssueInput.unlessOpen`), is still open. */
export class CommissionOpen extends AppError {
  constructor(serial: number) {
    super(
      "conflict",
      `commission ${serial}, which this one waits on, is still open; issue it once it is settled`,
    );
  }
}

/** The client's provision a ledger's refusal is about: the first one held on that holding. */
function blamed(
  refused: Provision,
  held: readonly Provision[],
  from: readonly WireProvision[],
): WireProvision {
  const i = held.findIndex(
    (p) => p.holder === refused.holder && p.source === refused.source && p.resource === refused.resource,
  );
  const provision = from[i];
  if (!provision) throw new Error("a ledger blamed a holding no provision named");
  return provision;
}
