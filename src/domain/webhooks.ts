import { isRunning, type RunInterval } from "./metering";

/**
 * Webhooks out, free of I/O: Standard Webhooks signatures, the retry schedule and its retention
 * horizon, and the deployment statuses a vendor reports.
 */

const encoder = new TextEncoder();

const base64 = (bytes: Uint8Array) => btoa(String.fromCharCode(...bytes));
const fromBase64 = (text: string) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));

/** A new signing secret in the Standard Webhooks form: `whsec_` and 32 random bytes in base64. */
export function newSigningSecret(): string {
  return `whsec_${base64(crypto.getRandomValues(new Uint8Array(32)))}`;
}

/** `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` keyed by the secret's decoded bytes. */
export async function sign(
  secret: string,
  id: string,
  timestampSeconds: number,
  body: string,
): Promise<string> {
  const key = await crypto.subtle.importKey(
    "raw",
    fromBase64(secret.replace(/^whsec_/, "")),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const mac = await crypto.subtle.sign("HMAC", key, encoder.encode(`${id}.${timestampSeconds}.${body}`));
  return `v1,${base64(new Uint8Array(mac))}`;
}

/** The `webhook-signature` header: one signature per secret in use, space-separated (rotation). */
export async function signatureHeader(
  secrets: readonly string[],
  id: string,
  timestampSeconds: number,
  body: string,
): Promise<string> {
  return (await Promise.all(secrets.map((s) => sign(s, id, timestampSeconds, body)))).join(" ");
}

/**
 * Seconds to wait before each retry: exponential from 30 s up to the cap, the queue's 12-hour
 * limit on a message's delay, reached on the 12th retry, about a day in; from there every retry
 * waits the cap, until the delivery's retention horizon (`nextAttemptIn`).
 */
export const RETRY_SCHEDULE: readonly number[] = [
  30, 60, 120, 300, 600, 1200, 2400, 3600, 7200, 14_400, 28_800, 43_200,
];

export const MAX_DELAY_SECONDS = 43_200;

/**
 * The wait before retry number `retry` (0-based): the schedule's, then the cap, with ±20% jitter
 * so that deliveries failing together do not retry together.
 */
export function retryDelay(retry: number, random: number): number {
  const base = RETRY_SCHEDULE[retry] ?? MAX_DELAY_SECONDS;
  return Math.max(1, Math.min(MAX_DELAY_SECONDS, Math.round(base * (0.8 + 0.4 * random))));
}

export const DEFAULT_WEBHOOK_RETENTION_DAYS = 30;

/**
 * How long a delivery is retried, from when its schedule started (its event, or its last
 * redelivery), before it is dead: `WEBHOOK_RETENTION_DAYS` (wrangler.toml), 30 days by default.
 */
export function webhookRetentionMs(vars: { WEBHOOK_RETENTION_DAYS?: string | undefined }): number {
  const days = Number(vars.WEBHOOK_RETENTION_DAYS ?? DEFAULT_WEBHOOK_RETENTION_DAYS);
  return (Number.isFinite(days) && days > 0 ? days : DEFAULT_WEBHOOK_RETENTION_DAYS) * 86_400_000;
}

/**
 * Seconds until a failed delivery is tried again: the schedule's (`retryDelay`), or the endpoint's
 * `Retry-After` (429 or 503) when that is longer: never sooner than either asks, so an endpoint
 * answering `Retry-After: 0` cannot have one delivery tried every second for its whole horizon.
 * Null (dead) when that falls past its retention horizon, so neither the schedule nor an endpoint
 * can keep a delivery alive for longer.
 */
export function nextAttemptIn(a: {
  retry: number;
  random: number;
  retryAfter: number | null;
  now: number;
  scheduleStartedAt: number;
  retentionMs: number;
}): number | null {
  const delay = Math.max(a.retryAfter ?? 0, retryDelay(a.retry, a.random));
  return a.now + delay * 1000 > a.scheduleStartedAt + a.retentionMs ? null : delay;
}

const DEFER_MARGIN_SECONDS = 60;

/**
 * Seconds a delivery waits behind an older undelivered event of its subscription before it looks
 * again, should the older one's completion not wake it first: until a minute after the older one's
 * next attempt (a minute when that is due now or unknown), at most the cap.
 */
export function deferSeconds(olderNextAttemptAt: number | null, now: number): number {
  const untilOlder = olderNextAttemptAt === null ? 0 : Math.ceil((olderNextAttemptAt - now) / 1000);
  return Math.min(MAX_DELAY_SECONDS, Math.max(0, untilOlder) + DEFER_MARGIN_SECONDS);
}

/** A `Retry-After` header in seconds or as an HTTP date, as a delay in whole seconds; null if absent or unreadable. */
export function retryAfterSeconds(header: string | null, now: Date): number | null {
  if (header === null) return null;
  const trimmed = header.trim();
  if (/^\d+$/.test(trimmed)) return Math.min(MAX_DELAY_SECONDS, Number(trimmed));
  const at = Date.parse(trimmed);
  if (Number.isNaN(at)) return null;
  return Math.min(MAX_DELAY_SECONDS, Math.max(0, Math.ceil((at - now.getTime()) / 1000)));
}

/** A signing secret a rotation replaced, which signs beside the current one until `expiresAt`. */
export interface GraceSecret {
  secret: string;
  expiresAt: string;
}

/** The secret the last rotation replaced, as a product keeps it (two columns), or null if none. */
export const replacedSecret = (secret: string | null, expiresAt: string | null): GraceSecret | null =>
  secret && expiresAt ? { secret, expiresAt } : null;

/**
 * At most this many replaced secrets sign beside the current one: each is a signature more on every
 * delivery, so a rotation past it is refused until the oldest one's day is over.
 */
export const MAX_GRACE_SECRETS = 4;

/**
 * The secrets that sign beside the current one at `now`: the one the last rotation replaced and
 * the older ones, each until its own expiry (a receiver may still verify with any of them).
 */
export function secretsInGrace(
  previous: GraceSecret | null,
  older: readonly GraceSecret[],
  now: string,
): GraceSecret[] {
  return [...(previous ? [previous] : []), ...older].filter((g) => g.expiresAt > now);
}

/**
 * What a rotation at `now` keeps of the secrets before it, beside the one it replaces: every one
 * still in its grace (a second rotation within a day does not stop the secret from before the
 * first, which a receiver that has installed neither new one still verifies with). Null when that
 * would be more than `MAX_GRACE_SECRETS` with the one replaced.
 */
export function olderAfterRotation(
  previous: GraceSecret | null,
  older: readonly GraceSecret[],
  now: string,
): GraceSecret[] | null {
  const kept = secretsInGrace(previous, older, now);
  return kept.length + 1 > MAX_GRACE_SECRETS ? null : kept;
}

/**
 * What a delivery attempt records of a fetch that threw: a short class its vendor can act on,
 * never the runtime's message. workerd answers a failed DNS lookup, TLS handshake or connect with
 * an opaque "internal error; reference = …" and a refused or dropped connection with "Network
 * connection lost.", so that much is all it can tell apart; the message itself goes to the log.
 */
export function attemptFailure(error: unknown, timeoutSeconds: number): string {
  const name = error instanceof Error ? error.name : "";
  if (name === "TimeoutError" || name === "AbortError")
    return `timeout: no answer within ${timeoutSeconds} s`;
  const message = error instanceof Error ? error.message : String(error);
  if (/network connection lost/i.test(message)) return "connection lost: refused or closed by the endpoint";
  return "connection failed: DNS, TLS or connect (the endpoint could not be reached)";
}

export const DEPLOYMENT_STATUSES = ["PENDING", "DEPLOYED", "UNDEPLOYED", "STOPPED", "FAILED"] as const;
export type DeploymentStatus = (typeof DEPLOYMENT_STATUSES)[number];

/** What a vendor may report next: provisioning ends DEPLOYED or FAILED; FAILED is final. */
const NEXT: Record<DeploymentStatus, readonly DeploymentStatus[]> = {
  PENDING: ["DEPLOYED", "FAILED"],
  DEPLOYED: ["STOPPED", "UNDEPLOYED"],
  STOPPED: ["DEPLOYED", "UNDEPLOYED"],
  UNDEPLOYED: ["DEPLOYED"],
  FAILED: [],
};

export function canMoveTo(from: DeploymentStatus, to: DeploymentStatus): boolean {
  return from === to || NEXT[from].includes(to);
}

/**
 * The status a term of a chain takes from a vendor's report of `reported` on a live term before it
 * (or on the term it follows, when it is created), or null: nothing to take. The vendor's
 * UNDEPLOYED is about the customer's deployment of the application, the chain: a later term it
 * would find DEPLOYED or STOPPED is undeployed with it, and DEPLOYED again lifts that, only that
 * (`undeployedWithChain`): a later term its vendor reported UNDEPLOYED itself stays so, or an
 * earlier term's DEPLOYED (a vendor asserting what it has of that term) would have the chain
 * renewed, and charged, for an application its vendor undeployed. A term that has ended keeps
 * what it has.
 */
export function chainDeployment(
  later: { deploymentStatus: DeploymentStatus; endedAt: string | null; undeployedWithChain?: boolean },
  reported: DeploymentStatus,
): DeploymentStatus | null {
  if (later.endedAt !== null) return null;
  if (reported === "UNDEPLOYED")
    return later.deploymentStatus === "DEPLOYED" || later.deploymentStatus === "STOPPED" ? reported : null;
  return reported === "DEPLOYED" &&
    later.deploymentStatus === "UNDEPLOYED" &&
    later.undeployedWithChain === true
    ? reported
    : null;
}

/**
 * The status a vendor's report `patch` sets on `r`, or null: it changes none. `carried`: reported on
 * an earlier term of `r`'s chain, it applies only as `chainDeployment` says.
 */
export function reportedStatus(
  r: { deploymentStatus: DeploymentStatus; endedAt: string | null; undeployedWithChain?: boolean },
  patch: DeploymentPatch,
  carried: boolean,
): DeploymentStatus | null {
  const reported = patch.deploymentStatus ?? r.deploymentStatus;
  return carried ? chainDeployment(r, reported) : reported;
}

/**
 * Whether a term is UNDEPLOYED with its chain after a report of `status` on it (`carried`: from an
 * earlier term) or on the term it follows when created (`carried`, too): a report naming no status
 * leaves it as it was (`was`); the vendor's own report on the term makes the status the term's.
 */
export function undeployedWithChain(
  status: DeploymentStatus,
  patch: DeploymentPatch,
  carried: boolean,
  was: boolean,
): boolean {
  if (carried) return status === "UNDEPLOYED";
  return patch.deploymentStatus === undefined ? was && status === "UNDEPLOYED" : false;
}

/**
 * The status a live term's chain takes from it, read from the term rather than from a report
 * (the operations queue's carry, a walk's check once done): STOPPED is an application still
 * deployed, so the later terms take DEPLOYED (lifting an UNDEPLOYED carried there). A walk that
 * read STOPPED and carried nothing left them UNDEPLOYED after the vendor's DEPLOYED and STOPPED,
 * and the chain's last term was refused its renewal.
 */
export const chainStatus = (status: DeploymentStatus): DeploymentStatus =>
  status === "STOPPED" ? "DEPLOYED" : status;

/**
 * Whether a term's change from `previous` to `next` is its vendor's own report that the later terms
 * of its chain take (`chainDeployment`): UNDEPLOYED reported on it, or DEPLOYED lifting an
 * UNDEPLOYED reported on it. A status carried to it from an earlier term is not: the walk carrying
 * it goes on by itself. Such a change has the later terms carried to after its commit, durably
 * (`SubscriptionStore.push`), whatever becomes of the request that reported it.
 */
export function carriesOn(
  previous: { deploymentStatus: DeploymentStatus; endedAt: string | null; undeployedWithChain?: boolean },
  next: { deploymentStatus: DeploymentStatus; endedAt: string | null; undeployedWithChain?: boolean },
): boolean {
  if (previous.endedAt !== null || next.endedAt !== null) return false;
  if (previous.deploymentStatus === next.deploymentStatus) return false;
  if (next.deploymentStatus === "UNDEPLOYED") return next.undeployedWithChain !== true;
  return (
    next.deploymentStatus === "DEPLOYED" &&
    previous.deploymentStatus === "UNDEPLOYED" &&
    previous.undeployedWithChain !== true
  );
}

/** What a vendor reports of a subscription (the vendor API's PATCH). */
export interface DeploymentPatch {
  deploymentStatus?: DeploymentStatus;
  syndicatedEndpoints?: string[];
  endUserInstructions?: string;
}

export type EventType = "CREATED" | "MODIFIED" | "DELETED";

/**
 * What a subscription's vendor is told of when it changes: what the vendor API shows of it
 * (`GET /api/subscription/{id}`, its status worked out from these), whether it runs, and what is
 * left of a depletable. A version that changes none of it is bookkeeping (a place reserved in its
 * chain, a quota step, a month of running time billed) and tells the vendor nothing.
 */
const TOLD = [
  "deploymentStatus",
  "startTime",
  "endTime",
  "endedAt",
  "autoRenew",
  "amount",
  "product",
  "customerId",
  "orderId",
  "syndicatedEndpoints",
  "endUserInstructions",
  "remaining",
] as const;

type Told = { [K in (typeof TOLD)[number]]: unknown } & { runs: readonly RunInterval[] };

const sameToVendor = (a: Told, b: Told): boolean =>
  isRunning(a.runs) === isRunning(b.runs) &&
  TOLD.every((field) => JSON.stringify(a[field]) === JSON.stringify(b[field]));

/**
 * The event a subscription's new version makes: CREATED for the first, DELETED when it ends,
 * MODIFIED for a change its vendor is told of (`TOLD`); none for bookkeeping, none once it has ended.
 */
export function eventOf(previous: Told | null, next: Told): EventType | null {
  // One created already ended (its purchase was undone before it was created) never was: no event.
  if (!previous) return next.endedAt !== null ? null : "CREATED";
  if (previous.endedAt !== null) return null;
  if (next.endedAt !== null) return "DELETED";
  return sameToVendor(previous, next) ? null : "MODIFIED";
}
