import {
  type Commission,
  findByReference,
  findCommission,
  openCommission,
  pendingSerials,
  stalledCommissions,
  transition,
} from "../db/commissions";
import { partnerCustomerIds } from "../db/customers";
import { groupByHolder, mergeProvisions, type Provision } from "../domain/quota";
import type { Env } from "../env";
import { AppError, badRequest, notFound } from "../http/errors";
import { type LedgerIssueResult, ledgerOf } from "../objects/quota-ledger";

/**
 * Two-phase commissions across holders' ledgers.
 *
 * The D1 row is the commission's single decision record: it allocates the serial before any
 * ledger is touched, and records "accepting"/"rejecting" before any ledger applies a resolution.
 * Ledgers apply a serial's resolution idempotently, so whoever finds a row mid-way (a retry, the
 * next request, the sweeper) finishes what the row says and nothing is ever half-applied.
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

type Decision = "accept" | "reject";
const DOING = { accept: "accepting", reject: "rejecting" } as const;
const DONE = { accept: "accepted", reject: "rejected" } as const;

function failureError(provision: Provision, result: Extract<LedgerIssueResult, { ok: false }>): AppError {
  const { failure } = result;
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

  const holders = [...new Set(provisions.map((p) => p.holder))];
  const known = await partnerCustomerIds(env, issuer.partnerId, holders);
  const stranger = provisions.find((p) => !known.has(p.holder));
  if (stranger) throw noHolding(stranger);

  const reference = input.reference ?? null;
  const opened = await openCommission(env, {
    serviceId: issuer.serviceId,
    reference,
    name: input.name,
    provisions,
    now,
  });
  if (!opened) return resumeReferenced(env, issuer, reference, input.autoAccept, now);
  const { serial } = opened;

  const groups = groupByHolder(provisions);
  // On a single holder, an auto-accepted commission is issued and accepted in one ledger step.
  const oneStep = input.autoAccept && groups.length === 1;
  const issued: string[] = [];
  for (const [holder, own] of groups) {
    const result = await ledgerOf(env, holder).issue(serial, own, input.force, oneStep);
    if (!result.ok) {
      await Promise.all(issued.map((h) => ledgerOf(env, h).reject(serial)));
      await transition(env, serial, ["issuing"], "failed", now);
      const blamed = own[result.index];
      throw blamed
        ? failureError(blamed, result)
        : new AppError("internal", "ledger blamed an unknown provision");
    }
    issued.push(holder);
  }

  // The sweeper rolls back an issue that looks abandoned; if it got here first, this one lost.
  const next = oneStep ? "accepted" : input.autoAccept ? "accepting" : "pending";
  if (!(await transition(env, serial, ["issuing"], next, now))) {
    throw new AppError(
      "conflict",
      `commission ${serial} was abandoned while it was being issued; issue it again`,
    );
  }
  if (input.autoAccept && !oneStep) await applyDecision(env, serial, provisions, "accept", now);
  return serial;
}

async function resumeReferenced(
  env: Env,
  issuer: Issuer,
  reference: string | null,
  autoAccept: boolean,
  now: Date,
): Promise<number> {
  const existing = reference === null ? undefined : await findByReference(env, reference);
  if (!existing || existing.serviceId !== issuer.serviceId || existing.state === "issuing") {
    throw new AppError("conflict", `commission ${reference} is being issued by another request; try again`);
  }
  if (autoAccept && (existing.state === "pending" || existing.state === "accepting")) {
    await resolveCommission(env, issuer.serviceId, existing.serial, "accept", now);
  }
  return existing.serial;
}

async function applyDecision(
  env: Env,
  serial: number,
  provisions: readonly Provision[],
  decision: Decision,
  now: Date,
): Promise<void> {
  const holders = [...new Set(provisions.map((p) => p.holder))];
  await Promise.all(holders.map((h) => ledgerOf(env, h)[decision](serial)));
  await transition(env, serial, [DOING[decision]], DONE[decision], now);
}

const doesNotExist = (serial: number) => notFound(`serial ${serial} does not exist`);

/**
 * Accepts or rejects one commission of `serviceId` (null: stratus's own). A commission another
 * request already started to resolve is finished first; if that resolution was the other one, this
 * serial is no longer pending and the answer is 404.
 */
export async function resolveCommission(
  env: Env,
  serviceId: string | null,
  serial: number,
  decision: Decision,
  now: Date,
): Promise<void> {
  let row = await findCommission(env, serial, serviceId);
  if (row?.state === "pending") {
    if (!(await transition(env, serial, ["pending"], DOING[decision], now))) {
      row = await findCommission(env, serial, serviceId);
    } else {
      row = { ...row, state: DOING[decision] };
    }
  }
  if (!row || (row.state !== "accepting" && row.state !== "rejecting")) throw doesNotExist(serial);
  const underway: Decision = row.state === "accepting" ? "accept" : "reject";
  await applyDecision(env, serial, row.provisions, underway, now);
  if (underway !== decision) throw doesNotExist(serial);
}

/** Accepts one of stratus's own commissions; a commission already accepted is left as it is. */
export async function ensureAccepted(env: Env, serial: number, now: Date): Promise<void> {
  const row = await findCommission(env, serial, null);
  if (row?.state === "accepted") return;
  await resolveCommission(env, null, serial, "accept", now);
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
  now: Date,
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
        await resolveCommission(env, serviceId, serial, decision, now);
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

export async function pendingCommission(env: Env, serviceId: string, serial: number): Promise<Commission> {
  const row = await findCommission(env, serial, serviceId);
  if (row?.state !== "pending") throw doesNotExist(serial);
  return row;
}

export const listPending = (env: Env, serviceId: string) => pendingSerials(env, serviceId);

/**
 * Finishes commissions whose request died mid-way: an unfinished issue is rolled back on every
 * ledger (its caller never learned the serial), an unfinished resolve is completed.
 */
export async function finishStalledCommissions(env: Env, now: Date, graceMs = 60_000): Promise<number> {
  const stalled = await stalledCommissions(env, new Date(now.getTime() - graceMs), 100);
  for (const row of stalled) {
    if (row.state === "issuing") {
      // A one-step commission its ledger already accepted took effect: record that, do not undo it.
      const [only, ...others] = [...new Set(row.provisions.map((p) => p.holder))];
      if (only && others.length === 0 && (await ledgerOf(env, only).outcome(row.serial)) === "accepted") {
        await transition(env, row.serial, ["issuing"], "accepted", now);
        continue;
      }
      if (await transition(env, row.serial, ["issuing"], "rejecting", now)) {
        await applyDecision(env, row.serial, row.provisions, "reject", now);
        await transition(env, row.serial, ["rejected"], "failed", now);
      }
    } else {
      await applyDecision(
        env,
        row.serial,
        row.provisions,
        row.state === "accepting" ? "accept" : "reject",
        now,
      );
    }
  }
  return stalled.length;
}
