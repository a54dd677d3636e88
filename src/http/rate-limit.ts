import type { Credential } from "../db/credentials";
import type { RateLimitTier } from "../db/schema";
import { AppError } from "../domain/errors";
import { logError } from "../domain/log";
import type { Family } from "./family";

/**
 * Rate limits, with Workers' Rate Limiting bindings (wrangler.toml `[[ratelimits]]`). The auth
 * middleware (auth.ts `admit`) is the only caller: public routes are never limited.
 *
 * - Every authenticated request counts against its credential (the key is the credential id) in
 *   the binding of its tier: the tier of the credential's partner (partner keys, service tokens,
 *   user tokens), `raised` for operators, `standard` for vendors. `unlimited` consults nothing.
 * - Every failed authentication counts against the client address (`CF-Connecting-IP`, or one
 *   shared key when it is absent) within its API family. Past the limit the address gets 429 in
 *   that family, even with a valid credential (under the Astakos dialect, only a failing one:
 *   auth.ts `admit`), until the window ends. The family is part of the key because an address is
 *   often shared (one egress, one NAT): a Synnefo service relaying its users' stale tokens must
 *   not lock a partner on the same address out of `/v1`, and a brute force is still stopped in
 *   each family it tries.
 *
 * The bindings tell only whether a request is within the limit, so a 429 is the only answer that
 * carries the RateLimit headers, and the wait it names is the rest of the current window (the
 * local limiter's windows are aligned to the clock; Cloudflare counts per location and roughly).
 * A limiter that throws lets the request through: an outage of the limiter is not one of the API.
 */

export interface Policy {
  /** The policy's name in the RateLimit headers. */
  name: string;
  binding: "RATE_LIMIT_STANDARD" | "RATE_LIMIT_RAISED" | "RATE_LIMIT_AUTH_FAILURES";
  /** Requests per window, as wrangler.toml configures the binding (a test checks they agree). */
  quota: number;
  /** Seconds: 10 or 60, the periods the binding supports. */
  window: number;
}

export const RATE_LIMIT_POLICIES = {
  standard: { name: "standard", binding: "RATE_LIMIT_STANDARD", quota: 600, window: 60 },
  raised: { name: "raised", binding: "RATE_LIMIT_RAISED", quota: 6000, window: 60 },
  authFailures: { name: "auth-failures", binding: "RATE_LIMIT_AUTH_FAILURES", quota: 20, window: 60 },
} as const satisfies Record<string, Policy>;

/** The tier a credential's requests count under. */
export function tierOf(credential: Pick<Credential, "role" | "rateLimit">): RateLimitTier {
  if (credential.rateLimit) return credential.rateLimit;
  return credential.role === "operator" ? "raised" : "standard";
}

/**
 * The key failed authentications count under: the API family, and Cloudflare's view of the client
 * address within it.
 */
export function failureKey(request: Request, family: Family): string {
  return `${family} ${request.headers.get("cf-connecting-ip") ?? "unknown"}`;
}

/** Seconds left in the current `window`-second window, at least 1. */
function secondsLeft(window: number, now = Date.now()): number {
  const ms = window * 1000;
  return Math.max(1, Math.ceil((ms - (now % ms)) / 1000));
}

function tooManyRequests(policy: Policy, retryAfter: number, message: string): AppError {
  return new AppError("too_many_requests", message, {
    rateLimited: { policy: policy.name, quota: policy.quota, window: policy.window, retryAfter },
  });
}

async function withinLimit(env: Env, policy: Policy, key: string): Promise<boolean> {
  try {
    return (await env[policy.binding].limit({ key })).success;
  } catch (error) {
    // Its outage is not the API's: the request goes through.
    logError("ratelimit.failed", error, { policy: policy.name });
    return true;
  }
}

/**
 * Addresses past the failed-authentication limit, with when their window ends (ms), as this
 * isolate saw them: the binding cannot be asked without counting, so a valid credential from such
 * an address is refused here. Bounded: the oldest entry goes first.
 */
const blockedAddresses = new Map<string, number>();
const MAX_BLOCKED = 10_000;

/** Throws 429 if `address` went past the failed-authentication limit in this window. */
export function refuseBlockedAddress(address: string): void {
  const until = blockedAddresses.get(address);
  if (until === undefined) return;
  const now = Date.now();
  if (until <= now) {
    blockedAddresses.delete(address);
    return;
  }
  throw tooManyRequests(
    RATE_LIMIT_POLICIES.authFailures,
    Math.max(1, Math.ceil((until - now) / 1000)),
    "too many failed authentications from this address; try again later",
  );
}

/** Counts a failed authentication; throws 429 (instead of the 401) once the address is past the limit. */
export async function countFailedAuthentication(env: Env, address: string): Promise<void> {
  const policy = RATE_LIMIT_POLICIES.authFailures;
  if (await withinLimit(env, policy, address)) return;
  const retryAfter = secondsLeft(policy.window);
  if (blockedAddresses.size >= MAX_BLOCKED)
    blockedAddresses.delete(blockedAddresses.keys().next().value as string);
  blockedAddresses.set(address, Date.now() + retryAfter * 1000);
  throw tooManyRequests(
    policy,
    retryAfter,
    "too many failed authentications from this address; try again later",
  );
}

/** Counts a request against its credential; throws 429 past the limit of the credential's tier. */
export async function limitCredential(env: Env, credential: Pick<Credential, "id" | "role" | "rateLimit">) {
  const tier = tierOf(credential);
  if (tier === "unlimited") return;
  const policy = RATE_LIMIT_POLICIES[tier];
  if (await withinLimit(env, policy, credential.id)) return;
  throw tooManyRequests(
    policy,
    secondsLeft(policy.window),
    `this credential made more than ${policy.quota} requests in ${policy.window} seconds; try again later`,
  );
}
