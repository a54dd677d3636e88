import { and, eq, isNull, lt, lte, or, sql } from "drizzle-orm";
import { database, deleteChunked } from "./client";
import { idempotencyKeys } from "./schema";

export type IdempotencyRecord = typeof idempotencyKeys.$inferSelect;

/**
 * Holding a key: `lockedUntil` doubles as the claim's token, so a request that lost its claim to a
 * takeover cannot finish or release the one that took it over.
 */
export interface Claim {
  owner: string;
  key: string;
  lockedUntil: string;
  /** What the request that held the key before committed to, if it died after committing. */
  intent: Record<string, unknown> | null;
}

export interface StoredResponse {
  status: number;
  headers: Array<[string, string]>;
  body: string | null;
}

const byKey = (owner: string, key: string) =>
  and(eq(idempotencyKeys.owner, owner), eq(idempotencyKeys.key, key));

const byClaim = (claim: Claim) =>
  and(byKey(claim.owner, claim.key), eq(idempotencyKeys.lockedUntil, claim.lockedUntil));

/**
 * Claims a key in one statement, since D1 has no interactive transactions: a new key is inserted;
 * an existing row is taken over only if it has expired, or if it is a retry of the same request
 * whose lock ran out (that request died without finishing). Null when someone else holds the key.
 */
export async function claimKey(
  env: Env,
  input: {
    owner: string;
    key: string;
    fingerprint: string;
    now: Date;
    lockedUntil: Date;
    expiresAt: Date;
  },
): Promise<Claim | null> {
  const now = input.now.toISOString();
  const fresh = {
    fingerprint: input.fingerprint,
    lockedUntil: input.lockedUntil.toISOString(),
    expiresAt: input.expiresAt.toISOString(),
  };
  const abandoned = and(
    isNull(idempotencyKeys.status),
    lte(idempotencyKeys.lockedUntil, now),
    eq(idempotencyKeys.fingerprint, input.fingerprint),
  );
  const row = await database(env)
    .insert(idempotencyKeys)
    .values({ owner: input.owner, key: input.key, ...fresh })
    .onConflictDoUpdate({
      target: [idempotencyKeys.owner, idempotencyKeys.key],
      // A takeover of an abandoned request keeps its intent, to resume it; an expired key starts afresh.
      set: {
        ...fresh,
        status: null,
        headers: null,
        body: null,
        intent: sql`CASE WHEN ${idempotencyKeys.expiresAt} <= ${now} THEN NULL ELSE ${idempotencyKeys.intent} END`,
      },
      setWhere: or(lte(idempotencyKeys.expiresAt, now), abandoned),
    })
    .returning({
      owner: idempotencyKeys.owner,
      key: idempotencyKeys.key,
      lockedUntil: idempotencyKeys.lockedUntil,
      intent: idempotencyKeys.intent,
    })
    .get();
  return row ?? null;
}

export async function findKey(env: Env, owner: string, key: string): Promise<IdempotencyRecord | undefined> {
  return database(env).select().from(idempotencyKeys).where(byKey(owner, key)).get();
}

/** Records the final answer, kept until `expiresAt`. */
export async function finishKey(
  env: Env,
  claim: Claim,
  response: StoredResponse,
  expiresAt: Date,
): Promise<void> {
  await database(env)
    .update(idempotencyKeys)
    .set({ ...response, expiresAt: expiresAt.toISOString() })
    .where(byClaim(claim))
    .run();
}

/**
 * Records what the request commits to, before it does any of it. False if the claim is no longer
 * the request's: it was so slow that its lock ran out and a retry took the key over (and runs the
 * work itself), so nothing was recorded.
 */
export async function recordIntent(
  env: Env,
  claim: Claim,
  intent: Record<string, unknown>,
): Promise<boolean> {
  const result = await database(env).update(idempotencyKeys).set({ intent }).where(byClaim(claim)).run();
  return result.meta.changes > 0;
}

/**
 * Ends a claim whose request failed after committing to its intent: the key stays, with the
 * intent, and unlocked, so a retry resumes that very work at once instead of starting another.
 */
export async function unlockKey(env: Env, claim: Claim, now: Date): Promise<void> {
  await database(env)
    .update(idempotencyKeys)
    .set({ lockedUntil: now.toISOString() })
    .where(and(byClaim(claim), isNull(idempotencyKeys.status)))
    .run();
}

/** Gives the key back after a failure that is not an answer, so the client can retry with it. */
export async function releaseKey(env: Env, claim: Claim): Promise<void> {
  await database(env)
    .delete(idempotencyKeys)
    .where(and(byClaim(claim), isNull(idempotencyKeys.status)))
    .run();
}

/**
 * Forgets keys past their 24 hours, a bounded number a run (`deleteChunked`): a key past them
 * answers nothing any more (it is claimed again as new), and each kept its answer's body.
 */
export function deleteExpiredKeys(env: Env, now: Date): Promise<number> {
  return deleteChunked(env, idempotencyKeys, lt(idempotencyKeys.expiresAt, now.toISOString()));
}
