import { homeOfBlock, pendingSerials } from "../db/commissions";
import { listResources } from "../db/resources";
import { blockOf, type CommissionState, type Decision, homeOf, serialIn } from "../domain/commissions";
import { mergeProvisions, type Provision } from "../domain/quota";
import type { Env } from "../env";
import { AppError, badRequest, notFound } from "../http/errors";
import { ttlCache } from "../http/ttl-cache";
import type { HoldFailure } from "../objects/ledger-holdings";
import { type CommissionView, ledgerOf, type RecoveryContext } from "../objects/quota-ledger";
import { ownCustomers } from "./customers";

/**
 * Two-phase commissions. Each commission is kept by its home ledger (`homeOf`: its first holder's),
 * which hands out its serial, records its decision and drives the other holders' ledgers; D1 only
 * says which ledger a block of serials belongs to, and indexes services' commissions for listing.
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
  provisions: Provision[];
  /**
   * What the commission is for. Issuing again with the reference of a live commission returns
   * that commission instead of holding the quota twice: retried work never double-charges.
   */
  reference?: string;
  /** What the recovery sweep settles a pending commission of stratus's own by, should its request die. */
  recovery?: RecoveryContext;
}

function failureError(provision: Provision, failure: HoldFailure): AppError {
  if (failure.name === "NoHoldingError") return noHolding(provision);
  const message =
    failure.name === "NoCapacityError"
      ? `${provision.resource} of ${provision.holder} (${provision.source}): usage ${failure.usage} + ${provision.quantity} exceeds limit ${failure.limit}`
      : `${provision.resource} of ${provision.holder} (${provision.source}): releasing ${-provision.quantity} would bring usage below zero`;
  return new AppError("over_limit", message, {
    data: { provision, name: failure.name, limit: failure.limit, usage: failure.usage },
  });
}

function noHolding(provision: Provision): AppError {
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
  provisions: readonly Provision[],
): Promise<Provision | undefined> {
  const owners = await ownerOfResource.many(
    [...new Set(provisions.map((p) => p.resource))],
    async () => new Map((await listResources(env)).map((r) => [r.name, r.service])),
  );
  return provisions.find((p) => {
    const owner = owners.get(p.resource);
    return owner !== undefined && owner !== serviceName;
  });
}

export async function issueCommission(
  env: Env,
  issuer: Issuer,
  input: IssueInput,
  now: Date,
): Promise<number> {
  const provisions = mergeProvisions(input.provisions);
  if (!provisions) throw badRequest("the quantities of one holding add up beyond the safe-integer range");

  const service = issuer.serviceId === null ? null : issuer.serviceName;
  const [known, foreign] = await Promise.all([
    ownCustomers(env, issuer.partnerId, [...new Set(provisions.map((p) => p.holder))]),
    service === null ? undefined : foreignProvision(env, service, provisions),
  ]);
  const stranger = provisions.find((p) => !known.has(p.holder));
  if (stranger) throw noHolding(stranger);
  // Refused as Astakos refuses a well-formed commission it will not take (InvalidDataError: 400
  // badRequest), before any ledger is touched: no serial is taken and nothing is held.
  if (foreign) {
    throw badRequest(
      `resource ${foreign.resource} is not registered to service ${service}: a service commissions only its own resources`,
    );
  }

  const home = homeOf(
    provisions.map((p) => p.holder),
    issuer.serviceId,
  );
  const answer = await ledgerOf(env, home).issue({
    home,
    serviceId: issuer.serviceId,
    reference: input.reference ?? null,
    name: input.name,
    provisions,
    force: input.force,
    autoAccept: input.autoAccept,
    issueTime: now.toISOString(),
    ...(input.recovery ? { recovery: input.recovery } : {}),
  });
  if (answer.ok) return answer.serial;
  switch (answer.reason) {
    case "refused":
      throw failureError(answer.provision, answer.failure);
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
  }
}

/** Which ledger keeps a serial. A block never changes hands, so the answer is kept for a while. */
const homesOfBlocks = ttlCache<string>(3_600_000);

async function homeOfSerial(env: Env, serial: number): Promise<string | undefined> {
  const block = blockOf(serial);
  return homesOfBlocks(String(block), () => homeOfBlock(env, block));
}

const doesNotExist = (serial: number) => notFound(`serial ${serial} does not exist`);

/**
 * Accepts or rejects one commission of `serviceId`. A commission another request already started
 * to resolve is finished first; if that resolution was the other one, this serial is no longer
 * pending and the answer is 404.
 */
export async function resolveCommission(
  env: Env,
  serviceId: string,
  serial: number,
  decision: Decision,
): Promise<void> {
  await resolveAt(env, await homeOfSerial(env, serial), serviceId, serial, decision);
}

async function resolveAt(
  env: Env,
  home: string | undefined,
  serviceId: string,
  serial: number,
  decision: Decision,
): Promise<void> {
  if (!home || (await ledgerOf(env, home).resolve(serial, serviceId, decision)) === "missing") {
    throw doesNotExist(serial);
  }
}

/**
 * Carries stratus's own commission for `reference` (kept by the ledger of `holders`' first) to
 * `decision` if it is still open; one already resolved is left as it is.
 */
/** Carries stratus's own commission `reference` to `decision` if it is open; answers where it ended (null: no live one). */
export async function settleReferenced(
  env: Env,
  holders: readonly string[],
  reference: string,
  decision: Decision,
): Promise<CommissionState | null> {
  return ledgerOf(env, homeOf(holders, null)).settleReferenced(reference, decision);
}

export interface ResolveManyResult {
  accepted: number[];
  rejected: number[];
  failed: Array<[number, AppError]>;
}

export async function resolveMany(
  env: Env,
  serviceId: string,
  accept: readonly number[],
  reject: readonly number[],
): Promise<ResolveManyResult> {
  const toAccept = [...new Set(accept)];
  const toReject = [...new Set(reject)];
  const both = new Set(toAccept.filter((s) => toReject.includes(s)));
  const result: ResolveManyResult = { accepted: [], rejected: [], failed: [] };
  for (const serial of both) {
    result.failed.push([serial, badRequest(`cannot both accept and reject serial ${serial}`)]);
  }
  const work: Array<[number, Decision]> = [
    ...toAccept.filter((s) => !both.has(s)).map((s): [number, Decision] => [s, "accept"]),
    ...toReject.filter((s) => !both.has(s)).map((s): [number, Decision] => [s, "reject"]),
  ];
  // Serials of one block share a ledger: each block is looked up once, however many serials it has.
  const blocks = [...new Set(work.map(([serial]) => blockOf(serial)))];
  const homes = new Map(
    await Promise.all(
      blocks.map(async (block) => [block, await homeOfSerial(env, serialIn(block, 0))] as const),
    ),
  );
  const outcomes = await Promise.all(
    work.map(async ([serial, decision]) => {
      try {
        await resolveAt(env, homes.get(blockOf(serial)), serviceId, serial, decision);
        return null;
      } catch (error) {
        if (error instanceof AppError) return error;
        throw error;
      }
    }),
  );
  work.forEach(([serial, decision], i) => {
    const error = outcomes[i];
    if (error) result.failed.push([serial, error]);
    else (decision === "accept" ? result.accepted : result.rejected).push(serial);
  });
  return result;
}

export async function pendingCommission(
  env: Env,
  serviceId: string,
  serial: number,
): Promise<CommissionView> {
  const home = await homeOfSerial(env, serial);
  const found = home ? await ledgerOf(env, home).describe(serial, serviceId) : null;
  if (!found) throw doesNotExist(serial);
  return found;
}

export const listPending = (env: Env, serviceId: string) => pendingSerials(env, serviceId);
