import { homeOfBlock, pendingSerials } from "../db/commissions";
import { blockOf, type CommissionState, type Decision, homeOf, serialIn } from "../domain/commissions";
import { AppError, badRequest, notFound } from "../domain/errors";
import { ttlCache } from "../domain/ttl-cache";
import { type CommissionView, ledgerOf } from "../objects/quota-ledger";

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
 * (null: no live commission has that reference).
 */
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
