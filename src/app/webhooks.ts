import { claimDelivery, type Delivery, insertDelivery, recordAttempt, syndicationOf } from "../db/webhooks";
import type { SubscriptionRecord } from "../domain/subscriptions";
import { type EventType, retryAfterSeconds, retryDelay, signatureHeader } from "../domain/webhooks";
import type { Env } from "../env";

/**
 * Webhooks out (spec/syndication-webhooks.md, signed per Standard Webhooks): one delivery per
 * event and endpoint, attempted from the webhooks queue until the endpoint answers 2xx or the
 * retry schedule (a little over three days) runs out.
 */

export interface WebhookMessage {
  deliveryId: string;
}

export interface SubscriptionEvent {
  id: string;
  type: EventType;
  date: string;
  sequence: number;
}

export const USER_AGENT = "stratus-webhooks/0.1 (+https://github.com/stratus)";
const TIMEOUT_MS = 10_000;
const LOCK_MS = 60_000;

/** The event as the vendor receives it: the spec's fields, plus the subscription's sequence. */
function payloadOf(env: Env, record: SubscriptionRecord, event: SubscriptionEvent): string {
  return JSON.stringify({
    date: event.date.replace(/\.\d{3}Z$/, "Z"),
    entity: "Subscription",
    entityUrl: new URL(`/api/subscription/${record.id}`, env.PUBLIC_URL).toString(),
    id: record.id,
    type: event.type,
    sequence: event.sequence,
  });
}

/** Hands a subscription's event to the webhooks pipeline; repeating it for the same event changes nothing. */
export async function dispatchEvent(
  env: Env,
  record: SubscriptionRecord,
  event: SubscriptionEvent,
): Promise<void> {
  if (!record.vendorId) return;
  await insertDelivery(env, {
    id: event.id,
    vendorId: record.vendorId,
    product: record.product,
    subscriptionId: record.id,
    type: event.type,
    sequence: event.sequence,
    payload: payloadOf(env, record, event),
    status: "pending",
    createdAt: event.date,
  });
  await env.WEBHOOKS.send({ deliveryId: event.id });
}

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
