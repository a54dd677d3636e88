import { parameterChunks } from "../db/client";
import { homeOfBlock, homesOfBlockList, pendingSerials } from "../db/commissions";
import {
  blockOf,
  type CommissionState,
  type Decision,
  homeOf,
  MAX_RESOLVE_SERIALS,
} from "../domain/commissions";
import { AppError, badRequest, notFound } from "../domain/errors";
import { logError } from "../domain/log";
import { ttlCache } from "../domain/ttl-cache";
import type { CommissionView } from "../objects/ledger-commissions";
import { ledgerOf } from "../objects/quota-ledger";

/**
 * Two-phase commissions. Each commission is kept by its home ledger (`homeOf`: its first holder's),
 * which hands out its serial, records its decision and drives the other holders' ledgers; D1 only
 * says which ledger a block of serials belongs to, and indexes services' commissions for listing.
 */

/** Which ledger keeps a serial. A block never changes hands, so the answer is kept for a while. */
const homesOfBlocks = ttlCache<string>(3_600_000);

async function homeOfSerial(env: Env, serial: number): Promise<string | undefined> {
  // Serials start at 1: resolve-many takes any integer, and one below names no commission.
  if (serial < 1) return undefined;
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
 * `decision` if it is still open; one already resolved is left as it is. Answers where it ended
 * (null: no live commission has that reference). With `followUp`, the caller has work to do after
 * the decision: the commission stays open to the recovery sweep until `followedUp`.
 */
export async function settleReferenced(
  env: Env,
  holders: readonly string[],
  reference: string,
  decision: Decision,
  followUp = false,
): Promise<CommissionState | null> {
  return ledgerOf(env, homeOf(holders, null)).settleReferenced(reference, decision, followUp);
}

/** The work after the decision on commission `reference` (`settleReferenced`) is done. */
export async function followedUp(env: Env, holders: readonly string[], reference: string): Promise<void> {
  await ledgerOf(env, homeOf(holders, null)).followedUp(reference);
}

export interface ResolveManyResult {
  accepted: number[];
  rejected: number[];
  failed: Array<[number, AppError]>;
}

/**
 * The home of each block `serials` fall in (undefined: no ledger was given it), or null where the
 * lookup failed (D1 down): that block's serials fail alone, the others are still resolved, and the
 * answer is still 200, each serial in one of its lists. Serials of one block share a ledger, and
 * the blocks not cached are looked up a statement per hundred: a service resolving the serials of
 * a thousand users names a thousand blocks, which a query each made as many queries as one
 * invocation may.
 */
async function homesOf(
  env: Env,
  serials: readonly number[],
): Promise<Map<number, { home: string | undefined } | null>> {
  const blocks = [...new Set(serials.map(blockOf))];
  const failed = new Set<string>();
  // Blocks are given from 1 (serials start at 1): one below names no commission, and is not looked up.
  const keys = blocks.filter((block) => block >= 1).map(String);
  const found = await homesOfBlocks.many(keys, async (missing) => {
    const loaded = new Map<string, string>();
    for (const chunk of parameterChunks(missing, 0)) {
      try {
        for (const [block, home] of await homesOfBlockList(env, chunk.map(Number)))
          loaded.set(String(block), home);
      } catch (error) {
        logError("commission.home_lookup_failed", error, { blocks: chunk.length });
        for (const key of chunk) failed.add(key);
      }
    }
    return loaded;
  });
  return new Map(
    blocks.map((block) => [block, failed.has(String(block)) ? null : { home: found.get(String(block)) }]),
  );
}

export async function resolveMany(
  env: Env,
  serviceId: string,
  accept: readonly number[],
  reject: readonly number[],
): Promise<ResolveManyResult> {
  const toAccept = [...new Set(accept)];
  const rejecting = new Set(reject);
  const toReject = [...rejecting];
  // A set, not a list: a body of 1 MiB lists about 85,000 serials each way.
  const both = new Set(toAccept.filter((s) => rejecting.has(s)));
  const result: ResolveManyResult = { accepted: [], rejected: [], failed: [] };
  // Listed first, as the spec's example lists them (Astakos's own code lists them last).
  for (const serial of both) {
    result.failed.push([serial, badRequest(`cannot both accept and reject serial ${serial}`)]);
  }
  const all: Array<[number, Decision]> = [
    ...toAccept.filter((s) => !both.has(s)).map((s): [number, Decision] => [s, "accept"]),
    ...toReject.filter((s) => !both.has(s)).map((s): [number, Decision] => [s, "reject"]),
  ];
  // One request resolves a bounded number (each is a call to a ledger); the rest are answered
  // one by one, so a backlog (Cyclades sends every pending serial at once) drains over requests.
  const work = all.slice(0, MAX_RESOLVE_SERIALS);
  const left = all.slice(MAX_RESOLVE_SERIALS);
  const homes = await homesOf(
    env,
    work.map(([serial]) => serial),
  );
  const notNow = (serial: number) =>
    new AppError("unavailable", `serial ${serial} could not be resolved now; send it again`);
  const outcomes = await Promise.all(
    work.map(async ([serial, decision]) => {
      const found = homes.get(blockOf(serial));
      // Its home is unknown for now: nothing of it was touched, so sending it again resolves it once.
      if (!found) return notNow(serial);
      try {
        await resolveAt(env, found.home, serviceId, serial, decision);
        return null;
      } catch (error) {
        if (error instanceof AppError) return error;
        // Others of the request may be resolved already: the answer must say so, not fail whole.
        // One resolved half-way is finished by its home's alarm, or by sending it again.
        logError("commission.resolve_failed", error, { serial, decision });
        return notNow(serial);
      }
    }),
  );
  work.forEach(([serial, decision], i) => {
    const error = outcomes[i];
    if (error) result.failed.push([serial, error]);
    else (decision === "accept" ? result.accepted : result.rejected).push(serial);
  });
  for (const [serial] of left) {
    const message = `serial ${serial} was not resolved: one request resolves at most ${MAX_RESOLVE_SERIALS}; send it again`;
    result.failed.push([serial, new AppError("unavailable", message)]);
  }
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
