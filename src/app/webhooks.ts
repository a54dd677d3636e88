import {
  claimDelivery,
  type Delivery,
  deferDelivery,
  deleteExpiredDeliveries,
  olderPending,
  overdueDeliveries,
  recordAttempt,
  requeueDelivery,
  syndicationOf,
  wakeNext,
} from "../db/webhooks";
import { logError, logWarning } from "../domain/log";
import {
  attemptFailure,
  deferSeconds,
  MAX_DELAY_SECONDS,
  nextAttemptIn,
  replacedSecret,
  retryAfterSeconds,
  secretsInGrace,
  signatureHeader,
  webhookRetentionMs,
} from "../domain/webhooks";
import { type WebhookMessage, webhooksQueue } from "../objects/webhook-events";

/**
 * Webhooks out (spec/syndication-webhooks.md, signed per Standard Webhooks): one delivery per
 * event and endpoint (`dispatchEvent`, src/objects/webhook-events.ts), attempted from the webhooks
 * queue until the endpoint answers 2xx or its retention horizon passes (`nextAttemptIn`).
 *
 * Each wait is a fresh message saying when its attempt is due (`WebhookMessage.due`), never a
 * retry of the same message, so the queue's bound on retries only bounds a consumer that keeps
 * crashing, and a 30-day horizon needs no more than the queue's 12-hour delays. The message whose
 * `due` is the delivery's `nextAttemptAt` owns it; any other (a duplicate, a wake-up that lost a
 * race) finds it not its own and is dropped, so copies never multiply.
 *
 * A subscription's events go out in order: a delivery is not attempted while an older event of its
 * subscription is undelivered (`claimDelivery`). It waits instead; the older one, once delivered
 * or dead, wakes it (`wakeNext`), and should that wake-up be lost it looks again a minute after the
 * older one's next attempt. An endpoint that comes back so receives its backlog oldest first per
 * subscription, whatever the jitter of each delivery's schedule.
 */

export const USER_AGENT = "ClouDesire";
const TIMEOUT_SECONDS = 10;
const LOCK_MS = 60_000;
/** Seconds before a message that found its delivery changing under it looks again. */
const LOOK_AGAIN_SECONDS = 1;

export type DeliveryOutcome =
  | { outcome: "delivered" | "dead" | "skipped" }
  /** Send a fresh message for the delivery, due at `due` (null: as soon as it is free). */
  | { outcome: "retry"; delaySeconds: number; due: string | null };

const secondsUntil = (iso: string, now: Date) =>
  Math.min(MAX_DELAY_SECONDS, Math.max(1, Math.ceil((Date.parse(iso) - now.getTime()) / 1000)));

const later = (now: Date, seconds: number) => new Date(now.getTime() + seconds * 1000).toISOString();

/**
 * One delivery attempt for `message`. Answers what the queue should do next: nothing more, or send
 * the delivery a fresh message after a delay (the schedule's with jitter, the endpoint's
 * Retry-After, the wait behind an older event, or until another consumer's hold ends).
 */
export async function attemptDelivery(
  env: Env,
  message: WebhookMessage,
  now: Date,
  random: () => number = Math.random,
): Promise<DeliveryOutcome> {
  const { claimed, delivery } = await claimDelivery(env, message.deliveryId, now, LOCK_MS);
  if (delivery?.status !== "pending") return { outcome: "skipped" };
  if (!claimed) return notClaimed(env, delivery, message.due ?? null, now);
  const scheduleStartedAt = Date.parse(delivery.scheduleStartedAt ?? delivery.createdAt);
  const retentionMs = webhookRetentionMs(env);
  // A message that comes after the horizon (a backlog, the cron's resend of a lost one, a wait
  // behind an older event that was redelivered) makes no attempt: the delivery is dead.
  const result =
    now.getTime() > scheduleStartedAt + retentionMs
      ? { status: null, error: "past its retention horizon: not attempted", retryAfter: null, durationMs: 0 }
      : await post(env, delivery, now);
  const ok = result.status !== null && result.status >= 200 && result.status < 300;
  const delay = ok
    ? null
    : nextAttemptIn({
        retry: delivery.attempts - delivery.scheduleBase,
        random: random(),
        retryAfter: result.status === 429 || result.status === 503 ? result.retryAfter : null,
        now: now.getTime(),
        scheduleStartedAt,
        retentionMs,
      });
  const status = ok ? "delivered" : delay === null ? "dead" : "pending";
  const nextAttemptAt = delay === null ? null : later(now, delay);
  await recordAttempt(
    env,
    delivery,
    { at: now.toISOString(), status: result.status, error: result.error, durationMs: result.durationMs },
    { status, nextAttemptAt },
  );
  if (delay !== null) return { outcome: "retry", delaySeconds: delay, due: nextAttemptAt };
  // The subscription's next event waited for this one: it goes now.
  const next = await wakeNext(env, delivery, now);
  if (next) await webhooksQueue(env).send({ deliveryId: next.id, due: next.nextAttemptAt });
  return { outcome: status === "delivered" ? "delivered" : "dead" };
}

/**
 * Why a message could not take its pending delivery, and what it does: not its own (another
 * message owns the delivery's next attempt), dropped; held by another consumer, back when the
 * hold ends; early, back when due; behind an older undelivered event of its subscription, it waits
 * for that one (`deferSeconds`).
 */
async function notClaimed(
  env: Env,
  delivery: Delivery,
  due: string | null,
  now: Date,
): Promise<DeliveryOutcome> {
  if (due !== delivery.nextAttemptAt) return { outcome: "skipped" };
  const at = now.toISOString();
  if (delivery.lockedUntil !== null && delivery.lockedUntil > at) {
    return { outcome: "retry", delaySeconds: secondsUntil(delivery.lockedUntil, now), due };
  }
  if (delivery.nextAttemptAt !== null && delivery.nextAttemptAt > at) {
    return { outcome: "retry", delaySeconds: secondsUntil(delivery.nextAttemptAt, now), due };
  }
  const older = await olderPending(env, delivery);
  const wait = deferSeconds(older?.nextAttemptAt ? Date.parse(older.nextAttemptAt) : null, now.getTime());
  const lookAgain = later(now, wait);
  if (await deferDelivery(env, delivery.id, lookAgain, now)) {
    return { outcome: "retry", delaySeconds: wait, due: lookAgain };
  }
  return { outcome: "retry", delaySeconds: LOOK_AGAIN_SECONDS, due };
}

/**
 * Delivers a dead or delivered event again: its schedule and retention horizon start over now.
 * Undefined while it is still pending. The row is what counts: a message the queue would not take
 * is sent by the cron's sweep of overdue deliveries, so a redelivery made is answered as made.
 * `recalled`: `now` is an earlier attempt's (a keyed retry); if its schedule started then or since,
 * that attempt made the redelivery, which is answered as made (the delivery as it now stands)
 * without a second one.
 */
export async function redeliver(
  env: Env,
  delivery: Delivery,
  now: Date,
  recalled = false,
): Promise<Delivery | undefined> {
  const { id, scheduleStartedAt } = delivery;
  if (recalled && scheduleStartedAt !== null && Date.parse(scheduleStartedAt) >= now.getTime()) {
    return delivery;
  }
  const requeued = await requeueDelivery(env, id, now);
  if (!requeued) return undefined;
  try {
    await webhooksQueue(env).send({ deliveryId: id, due: requeued.nextAttemptAt });
  } catch (error) {
    logError("webhooks.redeliver.unsent", error, { deliveryId: id });
  }
  return requeued;
}

/** How long past due a delivery nothing has attempted counts as having lost its message. */
const OVERDUE_MS = 10 * 60_000;

/**
 * Sends a fresh message to every pending delivery overdue by more than 10 minutes that no
 * consumer holds: its message was lost. Run by the cron; a delivery whose message was only late
 * gets two, and the one that does not own it is dropped.
 */
export async function resendOverdueDeliveries(env: Env, now: Date): Promise<number> {
  const PAGE = 500;
  const overdue = await overdueDeliveries(env, new Date(now.getTime() - OVERDUE_MS), now, PAGE);
  const messages = overdue.map((d) => ({ body: { deliveryId: d.id, due: d.nextAttemptAt } }));
  for (let i = 0; i < messages.length; i += 100) {
    await webhooksQueue(env).sendBatch(messages.slice(i, i + 100));
  }
  return overdue.length;
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
  const previous = replacedSecret(target.previousSecret, target.previousSecretExpiresAt);
  const secrets = [
    target.signingSecret,
    ...secretsInGrace(previous, target.olderSecrets, now.toISOString()).map((g) => g.secret),
  ];
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
      signal: AbortSignal.timeout(TIMEOUT_SECONDS * 1000),
      // A redirect is the endpoint's answer, not 2xx: the event is tried again later. Followed,
      // a 301/302 would turn the POST into a bodiless GET whose 2xx counted as delivered, and a
      // 307 would carry the signed event to whatever host it names.
      redirect: "manual",
    });
    await response.body?.cancel();
    return done(response.status, null, retryAfterSeconds(response.headers.get("retry-after"), now));
  } catch (error) {
    // The runtime's own words (its reference, for Cloudflare's support) are the operator's alone.
    logWarning("webhook.attempt_failed", {
      deliveryId: delivery.id,
      product: delivery.product,
      error: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
    });
    return done(null, attemptFailure(error, TIMEOUT_SECONDS));
  }
}

/**
 * Forgets deliveries that are over (delivered or dead) past their retention horizon, and attempts
 * older than it: the cron's, a bounded number a run. Answers how many rows went.
 */
export function forgetExpiredDeliveries(env: Env, now: Date): Promise<number> {
  return deleteExpiredDeliveries(env, new Date(now.getTime() - webhookRetentionMs(env)));
}
