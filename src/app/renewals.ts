import { uuidv7 } from "../domain/ids";
import type { Env } from "../env";
import { AppError } from "../http/errors";
import { subscriptionObject } from "../objects/subscription-object";
import { extend } from "./extend";
import { unwrap } from "./subscriptions";

/** One due subscription to renew or expire; `at` is the cron run's time. */
export interface RenewalMessage {
  subscription: string;
  at: string;
}

export type RenewalOutcome = "renewed" | "expired" | "failed" | "skipped";

/**
 * Renews a due subscription (auto_renew on) by extending its chain exactly as `?do=extend` would,
 * or expires it once its term is over, releasing its quota. A renewal that cannot be bought
 * (quota, a product gone) expires it and records why. Idempotent: a subscription already
 * renewed, extended by hand, cancelled or expired is left alone.
 */
export async function renewOrExpire(env: Env, id: string, at: Date): Promise<RenewalOutcome> {
  const object = subscriptionObject(env, id);
  const record = await object.get();
  if (!record || record.endedAt !== null || record.endTime === null) return "skipped";
  if (record.nextId !== null && record.nextId !== record.renewal?.subscription) return "skipped";
  const over = Date.parse(record.endTime) <= at.getTime();
  if (!record.autoRenew) {
    if (!over) return "skipped";
    unwrap(await object.expire(at));
    return "expired";
  }
  const ids = unwrap(await object.planRenewal({ subscription: uuidv7(), order: uuidv7() }));
  try {
    // The chain is walked from the record as it was read: planRenewal only reserved its next place.
    await extend(env, record.partnerId, id, {}, ids, at, record);
    return "renewed";
  } catch (error) {
    if (!(error instanceof AppError) || error.status >= 500) throw error;
    if (over) unwrap(await object.expire(at, `renewal failed: ${error.message}`));
    console.warn(JSON.stringify({ renewal: "failed", subscription: id, reason: error.message }));
    return over ? "failed" : "skipped";
  }
}
