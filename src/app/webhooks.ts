import { claimDelivery, type Delivery, recordAttempt, syndicationOf } from "../db/webhooks";
import { retryAfterSeconds, retryDelay, signatureHeader } from "../domain/webhooks";

/**
 * Webhooks out (spec/syndication-webhooks.md, signed per Standard Webhooks): one delivery per
 * event and endpoint (`dispatchEvent`, src/objects/webhook-events.ts), attempted from the webhooks
 * queue until the endpoint answers 2xx or the retry schedule (a little over three days) runs out.
 */

export const USER_AGENT = "stratus-webhooks/0.1 (+https://github.com/stratus)";
const TIMEOUT_MS = 10_000;
const LOCK_MS = 60_000;

export type DeliveryOutcome =
  | { outcome: "delivered" | "dead" | "skipped" }
  | { outcome: "retry"; delaySeconds: number };

const secondsUntil = (iso: string | null, now: Date) =>
  iso === null ? 0 : Math.max(1, Math.ceil((Date.parse(iso) - now.getTime()) / 1000));

/**
 * One delivery attempt. Answers what the queue should do with the message: nothing more, or
 * deliver it again after a delay (the schedule's, with jitter, or the endpoint's Retry-After).
 */
export async function attemptDelivery(
  env: Env,
  deliveryId: string,
  now: Date,
  random: () => number = Math.random,
): Promise<DeliveryOutcome> {
  const { claimed, delivery } = await claimDelivery(env, deliveryId, now, LOCK_MS);
  if (delivery?.status !== "pending") return { outcome: "skipped" };
  if (!claimed) {
    // Early (a duplicate message, or a redelivery racing the schedule) or held by another consumer.
    return {
      outcome: "retry",
      delaySeconds: secondsUntil(delivery.nextAttemptAt ?? delivery.lockedUntil, now),
    };
  }
  const result = await post(env, delivery, now);
  const retry = delivery.attempts - delivery.scheduleBase;
  const ok = result.status !== null && result.status >= 200 && result.status < 300;
  const honoured = result.status === 429 || result.status === 503 ? result.retryAfter : null;
  // Retry-After is honoured within the schedule, never past it: an endpoint cannot keep a delivery alive forever.
  const scheduled = retryDelay(retry, random());
  const delay = ok || scheduled === null ? null : (honoured ?? scheduled);
  const status = ok ? "delivered" : delay === null ? "dead" : "pending";
  await recordAttempt(
    env,
    delivery,
    { at: now.toISOString(), status: result.status, error: result.error, durationMs: result.durationMs },
    { status, nextAttemptAt: delay === null ? null : new Date(now.getTime() + delay * 1000).toISOString() },
  );
  if (status === "pending" && delay !== null) return { outcome: "retry", delaySeconds: delay };
  return { outcome: status === "delivered" ? "delivered" : "dead" };
}

async function post(env: Env, delivery: Delivery, now: Date) {
  const started = Date.now();
  const done = (status: number | null, error: string | null, retryAfter: number | null = null) => ({
    status,
    error,
    retryAfter,
    durationMs: Date.now() - started,
  });
  const target = await syndicationOf(env, delivery.product);
  if (!target?.endpoint || !target.signingSecret)
    return done(null, "the product has no syndication endpoint");
  const secrets = [target.signingSecret];
  if (
    target.previousSecret &&
    target.previousSecretExpiresAt &&
    target.previousSecretExpiresAt > now.toISOString()
  ) {
    secrets.push(target.previousSecret);
  }
  const timestamp = Math.floor(now.getTime() / 1000);
  try {
    const response = await fetch(target.endpoint, {
      method: "POST",
      headers: {
        "content-type": "application/json; charset=utf-8",
        accept: "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": delivery.id,
        "webhook-timestamp": String(timestamp),
        "webhook-signature": await signatureHeader(secrets, delivery.id, timestamp, delivery.payload),
      },
      body: delivery.payload,
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
    await response.body?.cancel();
    return done(response.status, null, retryAfterSeconds(response.headers.get("retry-after"), now));
  } catch (error) {
    return done(null, error instanceof Error ? `${error.name}: ${error.message}` : String(error));
  }
}
