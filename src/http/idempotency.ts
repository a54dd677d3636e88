import { type Intent, keepJournal } from "../app/intents";
import type { Principal } from "../db/credentials";
import {
  type Claim,
  claimKey,
  findKey,
  finishKey,
  type IdempotencyRecord,
  recordIntent,
  releaseKey,
  type StoredResponse,
  unlockKey,
} from "../db/idempotency";
import { AppError, badRequest, isFinalAnswer } from "../domain/errors";
import { fault } from "../domain/faults";
import { resume } from "./operations";
import { problemResponse } from "./problem";
import { render } from "./reply";

/**
 * Idempotency-Key (draft-ietf-httpapi-idempotency-key-header) for one owner (`keyOwner`): the first request
 * with a key runs and its final answer (any status below 500) is kept for 24 hours; a retry of the
 * same request gets that answer back byte for byte, a different request with the key gets 422, and a
 * retry while the first is still running gets 409. A retry of a request that died (its lock ran
 * out) resumes the work the first attempt committed to, never a second copy of it.
 */

const LOCK_MS = 60_000;
const RETENTION_MS = 24 * 60 * 60 * 1000;
export const MAX_KEY_LENGTH = 255;

/**
 * Whose keys a request's are: what its credential stands for (a partner, an account's customer, a
 * service, a vendor; the operators are one), not the credential. A partner that rotates its key
 * while a request is being retried sends the retry with the new one: scoped to the credential, the
 * retry would run again and buy a second time.
 */
export const keyOwner = (principal: Principal): string => `${principal.role}:${principal.subjectId ?? ""}`;

const keyError = (message: string) =>
  badRequest(`Idempotency-Key ${message}`, [{ point: "/headers/idempotency-key", message }]);

/**
 * The key from the header, or null without one. The draft makes the value a structured-field
 * string (`"abc"`); most clients send it bare, so both are accepted.
 */
function idempotencyKey(headers: Headers): string | null {
  const raw = headers.get("idempotency-key");
  if (raw === null) return null;
  const quoted = raw.match(/^"((?:[^"\\]|\\["\\])*)"$/);
  const key = quoted?.[1]?.replace(/\\(["\\])/g, "$1") ?? raw;
  if (key.length === 0 || key.length > MAX_KEY_LENGTH)
    throw keyError(`must be 1 to ${MAX_KEY_LENGTH} characters long`);
  if (!/^[\x20-\x7e]+$/.test(key)) throw keyError("must be printable ASCII");
  return key;
}

const UUID_SEGMENT = /\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(?=\/|$)/gi;

/**
 * The path as the API reads it: a trailing slash is the same path, and so is a UUID in either case
 * (README, "Ids"), so a client's retry that spells it otherwise is the same request.
 */
const readPath = (pathname: string) =>
  pathname.replace(UUID_SEGMENT, (segment) => segment.toLowerCase()).replace(/(.)\/+$/, "$1");

async function fingerprintOf(request: Request, body: string, asSent = false): Promise<string> {
  const url = new URL(request.url);
  const path = asSent ? url.pathname : readPath(url.pathname);
  const text = `${request.method}\n${path}${url.search}\n${body}`;
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function rebuild(stored: StoredResponse, replayed: boolean): Response {
  const headers = new Headers(stored.headers);
  if (replayed) headers.set("idempotent-replayed", "true");
  return new Response(stored.body, { status: stored.status, headers });
}

/** What a request gets when another one already holds its key. */
function existing(row: IdempotencyRecord | undefined, fingerprints: readonly string[]): Response {
  // Gone between our claim and this read: its request failed and released it; a retry will claim it.
  if (!row) throw new AppError("conflict", "a request with this Idempotency-Key just failed; retry it");
  if (!fingerprints.includes(row.fingerprint))
    throw new AppError("unprocessable", "this Idempotency-Key was used with a different request");
  if (row.status === null)
    throw new AppError("conflict", "a request with this Idempotency-Key is still being processed");
  return rebuild({ status: row.status, headers: row.headers ?? [], body: row.body }, true);
}

/** 409: a retry of the request took its Idempotency-Key over while it was slow, and does its work. */
const takenOver = () =>
  new AppError(
    "conflict",
    "a retry of this request took its Idempotency-Key over and does its work; retry with the key for its answer",
  );

/**
 * A final answer (a 4xx AppError) is the request's answer, rendered as app.ts renders it for /v1 so
 * replays match. A server fault goes on to app.ts, which logs it and answers it (never kept).
 */
async function answer(request: Request, requestId: string, run: () => Promise<Response>): Promise<Response> {
  try {
    return await run();
  } catch (error) {
    if (isFinalAnswer(error)) return problemResponse(error, new URL(request.url).pathname, requestId);
    throw error;
  }
}

/**
 * Runs the request under its claim. A request whose first attempt died after committing to its
 * work (the claim carries the intent) resumes that work, whatever the handler would decide now,
 * and its answer is marked as a replay; any other runs the handler, which records its intent
 * with the key before doing anything.
 */
async function runClaimed(
  request: Request,
  env: Env,
  claim: Claim,
  { requestId, keepAnswer }: { requestId: string; keepAnswer: boolean },
  run: () => Promise<Response>,
): Promise<Response> {
  let committed = claim.intent !== null;
  const earlier = claim.intent as unknown as Partial<Intent> & { created?: string };
  // A request whose key a retry took over (its lock ran out before it got here) does nothing: the
  // retry runs the work, under ids of its own, and this one, went on, would do it a second time.
  const commit = async (intent: Record<string, unknown>) => {
    if (!(await recordIntent(env, claim, intent))) throw takenOver();
    committed = true;
  };
  keepJournal(request, {
    async record(intent) {
      await commit(intent as unknown as Record<string, unknown>);
    },
    async choose(make) {
      if (earlier?.created) return { value: earlier.created, recalled: true };
      const value = await make();
      await commit({ created: value });
      return { value, recalled: false };
    },
  });
  // Work recorded as a payload is resumed as it is; a create runs its handler again, which finds
  // the id it recorded.
  const resumed = earlier?.payload ? (earlier as Intent) : null;
  let response: Response;
  try {
    response = await answer(
      request,
      requestId,
      resumed ? async () => render(await resume(env, request, resumed)) : run,
    );
    fault("request.answered");
  } catch (error) {
    await giveBack(env, claim, committed);
    throw error;
  }
  // A server failure is not an answer: the client may retry the key and get a real one. Nor is a
  // secret kept: a retry runs the request again, under the ids it recorded (a credential's secret
  // is issued anew under its id).
  if (response.status >= 500) {
    await giveBack(env, claim, committed);
    return response;
  }
  // A secret is not kept, but the key is, unlocked: the same request runs again, another one
  // with the key answers 422 as for any kept key.
  if (!keepAnswer && response.ok) {
    await unlockKey(env, claim, new Date());
    return response;
  }
  // Stored as text: every answer of the partner API is JSON or empty.
  const stored: StoredResponse = {
    status: response.status,
    headers: [...response.headers],
    body: response.body === null ? null : await response.text(),
  };
  await finishKey(env, claim, stored, new Date(Date.now() + RETENTION_MS));
  return rebuild(stored, claim.intent !== null);
}

/**
 * After a failure that is not an answer: a key whose request committed to work keeps that work
 * for the retry to resume (unlocked, so it may at once); any other is given back.
 */
async function giveBack(env: Env, claim: Claim, committed: boolean): Promise<void> {
  if (committed) await unlockKey(env, claim, new Date());
  else await releaseKey(env, claim);
}

/**
 * Runs `run` under the request's Idempotency-Key, if it has one. `body` is the request body as
 * the route read it, so the fingerprint covers exactly what the handler saw; `keepAnswer` false
 * for a route whose answer shows a secret (`RouteSpec.secret`). A replay answers the
 * first request's body as it was, its problem's `request_id` included; the `X-Request-Id` header
 * is always this request's.
 */
export async function withIdempotency(
  request: Request,
  env: Env,
  principal: Principal,
  how: { body: string; requestId: string; keepAnswer: boolean },
  run: () => Promise<Response>,
): Promise<Response> {
  const { body, requestId, keepAnswer } = how;
  const key = idempotencyKey(request.headers);
  if (key === null) return run();
  const fingerprint = await fingerprintOf(request, body);
  const now = new Date();
  const claim = await claimKey(env, {
    owner: keyOwner(principal),
    key,
    fingerprint,
    now,
    lockedUntil: new Date(now.getTime() + LOCK_MS),
    expiresAt: new Date(now.getTime() + RETENTION_MS),
  });
  if (claim) return runClaimed(request, env, claim, { requestId, keepAnswer }, run);
  const row = await findKey(env, keyOwner(principal), key);
  // A key kept before paths were read as the API reads them has its path as it was sent.
  const kept = row && row.fingerprint !== fingerprint ? [await fingerprintOf(request, body, true)] : [];
  return existing(row, [fingerprint, ...kept]);
}
