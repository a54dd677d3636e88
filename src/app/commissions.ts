import { homeOfBlock, pendingSerials } from "../db/commissions";
import { blockOf, type CommissionState, type Decision, homeOf } from "../domain/commissions";
import { mergeProvisions, type Provision } from "../domain/quota";
import type { Env } from "../env";
import { AppError, badRequest, notFound } from "../http/errors";
import { ttlCache } from "../http/ttl-cache";
import type { HoldFailure } from "../objects/ledger-holdings";
import { type CommissionView, ledgerOf } from "../objects/quota-ledger";
import { ownCustomers } from "./customers";

/**
 * Two-phase commissions. Each commission is kept by its home ledger (`homeOf`: its first holder's),
 * which hands out its serial, records its decision and drives the other holders' ledgers; D1 only
 * says which ledger a block of serials belongs to, and indexes services' commissions for listing.
 */

/** Who issues: a service, or stratus itself (`serviceId` null) holding quota for subscriptions. */
export interface Issuer {
  serviceId: string | null;
  partnerId: string;
}

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

export async function issueCommission(
  env: Env,
  issuer: Issuer,
  input: IssueInput,
  now: Date,
): Promise<number> {
  const provisions = mergeProvisions(input.provisions);
  if (!provisions) throw badRequest("the quantities of one holding add up beyond the safe-integer range");

  const known = await ownCustomers(env, issuer.partnerId, [...new Set(provisions.map((p) => p.holder))]);
  const stranger = provisions.find((p) => !known.has(p.holder));
  if (stranger) throw noHolding(stranger);

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
  });
  if (answer.ok) return answer.serial;
  switch (answer.reason) {
    case "refused":
      throw failureError(answer.provision, answer.failure);
    case "busy":
      throw new AppError(
        "conflict",
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
  const home = await homeOfSerial(env, serial);
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
  const outcomes = await Promise.all(
    work.map(async ([serial, decision]) => {
      try {
        await resolveCommission(env, serviceId, serial, decision);
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
