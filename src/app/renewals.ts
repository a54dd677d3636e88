import { releaseDueClaim, renewalStopWaits } from "../db/due-terms";
import { isFinalAnswer } from "../domain/errors";
import { fault } from "../domain/faults";
import { subscriptionIdBeside, uuidv7 } from "../domain/ids";
import { logWarning } from "../domain/log";
import { partnerScope } from "../domain/scope";
import { isExpired, type SubscriptionRecord } from "../domain/subscriptions";
import { CommissionOpen } from "../objects/commission-issue";
import { subscriptionObject } from "../objects/subscription-object";
import { extend } from "./extend";
import { purchaseAskedInIssue, purchaseOpen } from "./recovery";
import { PurchaseGivenUp, unwrap } from "./subscriptions";
import type { MonthCloseMessage } from "./usage";

/**
 * One due subscription to renew or expire; `at` is the cron run's time. `catchUp`: sent by the
 * renewal before it (`catchUp`), not by a run that claimed the term.
 */
export interface RenewalMessage {
  subscription: string;
  at: string;
  catchUp?: true;
}

/**
 * The rest of a cron run's paging, for the renewals consumer to carry on from its cursor: the due
 * terms ending by `before` (renewals, each message at `at`), or the clouds running since before
 * `boundary` (a month close). `after` is the last row already enqueued (null: from the first).
 */
export type FanOut =
  | { kind: "renewals"; before: string; at: string; after: { endTime: string; id: string } | null }
  | { kind: "monthClose"; boundary: string; after: { runningSince: number; id: string } | null };

export interface FanOutMessage {
  fanOut: FanOut;
}

export const isFanOut = (body: object): body is FanOutMessage => "fanOut" in body;

/**
 * The renewals queue carries the cron's work: renewals and expiries, month closes of running
 * clouds, and the pages of either that one invocation left to the next.
 */
export const renewalsQueue = (env: Env) => env.RENEWALS as Queue<RenewalsMessage>;

export type RenewalsMessage = RenewalMessage | MonthCloseMessage | FanOutMessage;

export type RenewalOutcome = "renewed" | "expired" | "failed" | "skipped";

/**
 * Renews a due subscription (auto_renew on) by extending its chain exactly as `?do=extend` would,
 * or expires it once its term is over, releasing its quota. A renewal that cannot be bought
 * (quota, a product gone) expires it and records why. Idempotent: a subscription already
 * renewed, extended by hand, cancelled or expired is left alone. A catch-up renewal (`catchUp`)
 * took no term up: a cancel or an auto_renew off queued for its chain meanwhile decides first, as
 * the run's claim has it decide, and the term is left to the first run after that change.
 */
export async function renewOrExpire(
  env: Env,
  id: string,
  at: Date,
  catchUp = false,
): Promise<RenewalOutcome> {
  if (catchUp && (await renewalStopWaits(env, id))) return "skipped";
  const outcome = await settleDue(env, id, at);
  // Left as it was (its purchase open, its renewal refused before the term is over, or settled
  // already): the next run looks at it again, as it would have before this run claimed it.
  if (outcome === "skipped") await releaseDueClaim(env, [id]);
  return outcome;
}

async function settleDue(env: Env, id: string, at: Date, again = false): Promise<RenewalOutcome> {
  const object = subscriptionObject(env, id);
  const plan = await object.planRenewal({ subscription: subscriptionIdBeside(id), order: uuidv7() }, at);
  if (plan.step === "skip") return "skipped";
  // A term whose purchase is still open (waiting on its vendor, or answered at once by a request
  // that died before its orders) is left as it is until the purchase is settled, by its operation
  // or the recovery sweep (the cron finds it due again): renewed, the renewal would outlive the
  // purchase's undo, charged and holding nothing; expired, its quota would be released twice, once
  // here and once by that undo. Its place goes back, so an extension by hand meanwhile is not kept
  // waiting on it: with the renewal given up, unless another delivery has created it meanwhile
  // (`releaseNext`). Kept on the ledger the renewal's commission is issued to, the purchase is asked
  // there by the renewal's issue instead, in the same call: one object call fewer a renewal.
  const unlessOpen = plan.step === "renew" ? purchaseAskedInIssue(plan.record) : undefined;
  if (!unlessOpen && (await purchaseOpen(env, plan.record))) {
    if (plan.step === "renew") await object.releaseNext(plan.ids.subscription, false, true);
    return "skipped";
  }
  if (plan.step === "expire") {
    const ended = unwrap(await object.expire(at, null, true));
    // What the plan read changed (auto_renew turned on, an extension took the place): planned again.
    if (ended.endedAt === null) return again ? "skipped" : settleDue(env, id, at, true);
    return "expired";
  }
  const { record, ids, fresh } = plan;
  fault("renewal.planned");
  const over = isExpired(record, at);
  try {
    // The chain is walked from the record as planned: the place after it is this renewal's.
    const renewed = await extend(env, partnerScope(record.partnerId), id, {}, ids, at, {
      from: record,
      chargeKind: "renewal",
      fresh,
      unlessOpen,
    });
    // Planned by an earlier delivery, whose change of the term the read model may have shown before
    // this run claimed it (its renewal not there yet): completing the renewal changes the term no
    // more, and the claim, kept, would hide it for the hour should the renewal end meanwhile (then
    // it is due to expire). A renewal planned here changed the term after the claim, which went with it.
    if (!fresh) await releaseDueClaim(env, [id]);
    await catchUp(env, renewed, at);
    return "renewed";
  } catch (error) {
    // Its first attempt was given up by the recovery sweep: not a refusal. That undo gave the
    // place back, so the renewal is planned again, with ids of its own (once; then the next run).
    if (error instanceof PurchaseGivenUp) return again ? "skipped" : settleDue(env, id, at, true);
    // The term's purchase is still open, as its renewal's issue found: left as it is, as above
    // (`extend` gave the place back, as it does on any refusal).
    if (error instanceof CommissionOpen) return "skipped";
    if (!isFinalAnswer(error)) throw error;
    // Refused before its issue could ask (a price, a product changed): asked apart before the term
    // is expired on that refusal, which would release its quota again should the purchase be undone.
    if (over && unlessOpen && (await purchaseOpen(env, record))) return "skipped";
    if (over) unwrap(await object.expire(at, `renewal failed: ${error.message}`));
    logWarning("renewal.refused", { subscription: id, expired: over, error: error.message });
    return over ? "failed" : "skipped";
  }
}

/**
 * A renewal over already when it was bought (the cron down for days: a renewal continues the
 * chain from its end) is renewed in turn at once, by a message of its own: left to the next runs,
 * a chain renewed daily and 40 days behind took 41 runs (3.5 hours) to be current, reading expired
 * meanwhile, and a hand extension in that time started from now, leaving the days between
 * unbilled while the chain held its quota. One renewal a message, as every other: a backlog
 * costs each invocation what a night's renewals do. A renewal on time sends nothing. Unclaimed,
 * the message asks for a queued change stopping the chain when it runs (`renewOrExpire`): sent
 * without it, the chain renewed up to the present after the partner had stopped it.
 */
async function catchUp(env: Env, renewed: SubscriptionRecord, at: Date): Promise<void> {
  if (renewed.endedAt !== null || renewed.endTime === null || Date.parse(renewed.endTime) > at.getTime())
    return;
  await renewalsQueue(env).send({ subscription: renewed.id, at: at.toISOString(), catchUp: true });
}
