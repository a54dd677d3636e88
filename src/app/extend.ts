import { chainLastTerm } from "../db/subscriptions";
import { findProduct, isDepletable, type Product } from "../domain/catalog";
import type { TermChargeKind } from "../domain/charges";
import { type ResolvedDuration, resolveExtension } from "../domain/durations";
import { AppError, badRequest, isFinalAnswer, refused } from "../domain/errors";
import { durationErrors, type PlannedSubscription, priceRefusal } from "../domain/purchase";
import type { Scope } from "../domain/scope";
import { type SubscriptionRecord, termPriceMinor } from "../domain/subscriptions";
import type { WorkRef } from "../domain/work-refs";
import { subscriptionObject } from "../objects/subscription-object";
import { catalogKnowing } from "./catalog";
import type { AcceptedPrice } from "./intents";
import { visibleRecord } from "./reads";
import { settleOpenPurchase } from "./recovery";
import { type BuyOptions, buy, unwrap } from "./subscriptions";

/**
 * The term that extending `last` would buy, or the 4xx saying why it cannot be: an open-ended
 * subscription has no end to extend, a cancelled one is over, one waiting for its vendor has no
 * term yet, and the input must be a valid period or end time. Requests check it before accepting;
 * the extension checks it again on the chain's actual last subscription.
 */
export function extensionTerm(
  last: SubscriptionRecord,
  input: { period?: string; end_time?: Date },
  now: Date,
): ResolvedDuration {
  if (last.endTime === null) {
    throw badRequest(`a ${last.kind} subscription has no end to extend`, [
      { point: "/do", message: "open-ended subscriptions cannot be extended" },
    ]);
  }
  if (last.endReason === "cancelled") throw new AppError("conflict", `subscription ${last.id} was cancelled`);
  if (last.endReason === "failed")
    throw new AppError("conflict", `subscription ${last.id} was never bought: its purchase was undone`);
  if (last.deploymentStatus === "PENDING" && last.endedAt === null) {
    throw new AppError(
      "conflict",
      `subscription ${last.id} is waiting for its vendor to deploy it; extend it once it is deployed`,
    );
  }
  // The new term carries the chain's deployment on (`buy`'s `chain`): it would be charged at once
  // for an application its vendor has taken down, with no vendor's report to wait for or undo it.
  if (last.deploymentStatus === "UNDEPLOYED") {
    throw new AppError(
      "conflict",
      `subscription ${last.id} was undeployed by its vendor; extend it once its vendor deploys it again, or buy the product anew`,
    );
  }
  const duration = resolveExtension(
    {
      start: new Date(last.startTime),
      end: new Date(last.endTime),
      createdWith: last.createdWith ?? "end_time",
      period: last.period,
    },
    input,
    now,
  );
  if (!duration.ok) throw badRequest(duration.error.message, durationErrors(duration.error, ""));
  return duration.value;
}

/**
 * Extends the last subscription of the chain `id` belongs to, as `?do=extend` does. `from`: the
 * record of `id` when the caller has just read it; `operationRef`: the operation extending, which
 * then decides the extension's fate should it die half-way; `fresh`: `ids` were chosen by this
 * attempt, so nothing was made under them yet.
 */
export async function extend(
  env: Env,
  scope: Scope,
  id: string,
  input: { period?: string; end_time?: Date },
  ids: { subscription: string; order: string },
  now: Date,
  options: {
    from?: SubscriptionRecord;
    operationRef?: string;
    chargeKind?: TermChargeKind;
    fresh?: boolean;
    /** The price the extension was accepted at (`acceptedPrice`); absent: the catalog's now. */
    price?: AcceptedPrice;
    /** A renewal's: its term's purchase, asked by its issue whether it is still open (`renewOrExpire`). */
    unlessOpen?: BuyOptions["unlessOpen"];
  } = {},
): Promise<SubscriptionRecord> {
  const named = options.from ?? (await visibleRecord(env, scope, id));
  // The place after it reserved for this extension (a renewal's, planned on the chain's last
  // term): nothing to look for, where every renewal would read D1 and an object more.
  let last =
    named.nextId === ids.subscription
      ? named
      : await nearChainEnd(env, named, options.fresh ? null : ids.subscription);
  for (let hops = 0; hops < 1000; hops++) {
    // The walk stops before the extension these ids make, should an earlier run have made it.
    while (last.nextId !== null && last.nextId !== ids.subscription) {
      const next = await subscriptionObject(env, last.nextId).get();
      // One created failed was never bought: its place is free (`placeAbandoned`).
      if (!next || next.endReason === "failed") break;
      last = next;
    }
    // An earlier run that made the extension decided its term: it is finished as it was made,
    // whatever has happened to the chain since (a cancel after it took effect refuses nothing).
    const made =
      last.nextId === ids.subscription && !options.fresh
        ? await subscriptionObject(env, ids.subscription).get()
        : null;
    // A term may still wait on its purchase (a vendor in the same order, a request that died
    // before its orders): extended now, the extension would outlive that purchase's undo, charged
    // and holding nothing. One settled here may have been undone: the chain is walked again; one
    // that has not taken effect answers 409 (`settleOpenPurchase`). A renewal waits for the
    // purchase instead: `renewOrExpire`.
    const renewal = options.chargeKind === "renewal";
    if (!made && !renewal && last.endedAt === null) {
      if (await settleOpenPurchase(env, last, now, "extend")) {
        last = await visibleRecord(env, scope, id);
        continue;
      }
    }
    const from = continuesFrom(last, now, renewal);
    let planned: PlannedSubscription;
    try {
      planned = made
        ? plannedAs(made, last)
        : plannedAfter(last, options.price ?? (await acceptedPrice(env, last)), input, from);
    } catch (error) {
      // Refused with the place already reserved under these ids (an earlier attempt, a keyed
      // request or an operation, died after reserving it, and the chain was cancelled since):
      // nothing was made under them, so the place goes back, as after a refused purchase below.
      if (!made && isFinalAnswer(error))
        await subscriptionObject(env, last.id).releaseNext(ids.subscription, false, renewal);
      throw error;
    }
    // A renewal reserves the place when it is planned: then it is this extension's already.
    let reserved = last;
    if (last.nextId !== ids.subscription) {
      const record = unwrap(await subscriptionObject(env, last.id).reserveNext(ids.subscription));
      if (!record) {
        // Something took the place after `last` since it was read: walk on from what it is now.
        last = (await subscriptionObject(env, last.id).get()) ?? last;
        // Taken by an extension or renewal not created yet (being bought, or its request died and
        // the place is its own until the recovery bound): there is no term to walk on to, and
        // asking for the place again gets the same answer until that one is created or given up.
        if (last.nextId !== null && !(await subscriptionObject(env, last.nextId).get())) {
          throw new AppError(
            "conflict",
            "another extension or renewal of this chain is under way; try again once it is done",
          );
        }
        continue;
      }
      reserved = record;
    }
    try {
      const purchaseIds = {
        orders: { [last.customerId]: ids.order },
        subscriptions: [ids.subscription],
        previous: last.id,
      };
      const bought = await buy(env, last.partnerId, [planned], purchaseIds, now, {
        chain: {
          rootId: last.rootId,
          previousId: last.id,
          deploymentStatus: last.deploymentStatus,
          syndicatedEndpoints: last.syndicatedEndpoints,
          endUserInstructions: last.endUserInstructions,
          // As `last` stood when the place was reserved: a chain still holding its quota holds
          // nothing more for the new term; one whose hold was released holds it again.
          heldBy: reserved.holdReleased ? null : (reserved.heldBy ?? reserved.id),
        },
        ...(options.operationRef ? { operationRef: options.operationRef } : {}),
        // A renewal passes `renewal`; otherwise the term is charged as an extension.
        chargeKind: options.chargeKind ?? "extension",
        unlessOpen: options.unlessOpen,
      });
      const extension = bought.subscriptions[0];
      if (!extension) throw new AppError("internal", "extension was not created");
      return extension;
    } catch (error) {
      // A refusal bought nothing: the place goes back. After any other failure the extension may
      // still take effect (its commission is open): the place stays its own until the retry or
      // the recovery sweep settles it (`abandon` gives it back if it is undone). A renewal's place
      // goes back with the renewal given up: another delivery may be buying it (`releaseNext`).
      if (isFinalAnswer(error))
        await subscriptionObject(env, last.id).releaseNext(ids.subscription, false, renewal);
      throw error;
    }
  }
  throw new AppError("conflict", "the chain keeps changing; try again");
}

/**
 * The instant an extension of the chain's last term `last` is bought as of (`resolveExtension`
 * starts it at the later of that and the chain's end). A renewal continues the chain from its end,
 * even when it runs after it; so does an extension by hand of a chain still renewing (its last
 * term auto-renewing and not ended, its renewal late: the cron or its queue behind): it holds its
 * quota all along and its renewals would have billed that time, so an extension from now left the
 * days between unbilled and stopped the renewals that would have billed them. A chain that has
 * ended, or that was not renewing, continues from now: no term is bought over before it is bought.
 */
export function continuesFrom(last: SubscriptionRecord, now: Date, renewal: boolean): Date {
  const renewing = renewal || (last.autoRenew && last.endedAt === null);
  return renewing && last.endTime !== null
    ? new Date(Math.min(now.getTime(), Date.parse(last.endTime)))
    : now;
}

/**
 * Where the walk from `from` to its chain's end starts: the chain's last term as the read model
 * has it, when that term's own record is of the chain and comes after `from`; else `from`. A
 * chain extended through its first term walked every term, an object call each, on every
 * extension. The walk goes on from there by the records, so a read model behind costs only the
 * terms it lacks. `made`: the extension's id when an earlier run may have created it; then the
 * walk starts at `from` as before, to stop before it (asked after the read model, so a term
 * after it could not have been there either).
 */
export async function nearChainEnd(
  env: Env,
  from: SubscriptionRecord,
  made: string | null,
): Promise<SubscriptionRecord> {
  if (from.nextId === null || from.nextId === made || from.endTime === null) return from;
  const lastId = await chainLastTerm(env, from.rootId);
  if (lastId === null || lastId === from.id) return from;
  if (made !== null && (await subscriptionObject(env, made).get())) return from;
  const last = await subscriptionObject(env, lastId).get();
  const after =
    last !== null &&
    last.rootId === from.rootId &&
    last.endReason !== "failed" &&
    Date.parse(last.startTime) >= Date.parse(from.endTime);
  return after ? last : from;
}

/**
 * Sets auto_renew on subscription `id` (`expectedVersion`: its If-Match) and carries the flag it
 * ends with to every term after it in its chain. The chain's last term decides whether the chain
 * renews; a client setting the flag on an earlier term (the chain's first, as
 * `/groupedsubscriptions` lists it) means the chain, and must not be charged a renewal it turned
 * off. `toggle`: a bare toggle's reference, which flips the flag as it stands when it applies
 * (`Subscription.setAutoRenew`). Answers the record of `id`.
 */
export async function setAutoRenew(
  env: Env,
  id: string,
  value: boolean,
  expectedVersion?: number,
  work?: WorkRef,
  toggle?: string,
): Promise<SubscriptionRecord> {
  if (value) await refuseRenewalOfEndedChain(env, id, toggle !== undefined);
  const record = unwrap(await subscriptionObject(env, id).setAutoRenew(value, expectedVersion, work, toggle));
  await carryAutoRenew(env, record);
  return record;
}

/**
 * Carries the auto_renew of term `record` to the terms after it in its chain. Again, it changes
 * nothing: a change of the flag that died before it got here is finished by running it again.
 * The chain's last term, which decides whether it renews, takes the flag first (found as
 * `nearChainEnd` finds it): a carry that dies on the way (an instance lost; a chain of more terms
 * than one invocation may call) has already stopped, or kept, the renewal it was asked to, where
 * walking from the front left the last term renewing, and charged, after an answer of 500.
 */
export async function carryAutoRenew(env: Env, record: SubscriptionRecord): Promise<void> {
  const last = await nearChainEnd(env, record, null);
  if (last.id !== record.id && last.id !== record.nextId) {
    await subscriptionObject(env, last.id).setAutoRenew(record.autoRenew);
  }
  let next = record.nextId;
  while (next !== null) {
    const outcome = await subscriptionObject(env, next).setAutoRenew(record.autoRenew);
    // A place held for an extension being bought has no object yet: that term took its flag
    // from the term it follows when it was planned.
    if (!outcome.ok) break;
    next = outcome.value.nextId;
  }
}

/**
 * Turning auto_renew on for term `id` whose chain's last term has ended (an extension or renewal
 * after it was cancelled: its chain was cancelled) is refused, 409: the cron expires `id` at its
 * end without renewing it (`renewalStep`), so a flag turned on would tell the partner it renews.
 * A term that has ended with nothing after it is refused by its object; turning the flag off, or
 * setting it on where it is already on, changes nothing that matters and is never refused. A bare
 * toggle (`toggle`) turning it on is checked whatever `id`'s own flag: it flips the chain's flag,
 * off there (its last term's), so its 200 would say the chain renews.
 */
export async function refuseRenewalOfEndedChain(env: Env, id: string, toggle = false): Promise<void> {
  const record = await subscriptionObject(env, id).get();
  if (!record || (record.autoRenew && !toggle) || record.nextId === null) return;
  let last = await nearChainEnd(env, record, null);
  for (let hops = 0; hops < 1000 && last.nextId !== null; hops++) {
    const next = await subscriptionObject(env, last.nextId).get();
    // A place held for an extension being bought, or one whose purchase was undone: the chain
    // may still go on from `last`.
    if (!next || next.endReason === "failed") break;
    last = next;
  }
  if (last.id !== record.id && last.endedAt !== null) {
    throw refused({
      kind: "conflict",
      message: `the chain ends with this term: subscription ${last.id} after it has ended, so there is nothing to renew`,
      point: "/auto_renew",
    });
  }
}

/**
 * The next term after `last` at `price`, bought as the chain's product (its quota resource and
 * delivery, which its hold and its vendor follow), or the 4xx saying why there is none
 * (`extensionTerm`, or a term that would cost more than one may). Requests check it before
 * accepting an extension; the extension plans it again on the chain's actual last subscription.
 */
export function plannedAfter(
  last: SubscriptionRecord,
  price: AcceptedPrice,
  input: { period?: string; end_time?: Date },
  now: Date,
): PlannedSubscription {
  const product: Product = { ...productOf(last), ...price };
  const { start, end, period, createdWith } = extensionTerm(last, input, now);
  const priceMinor = termPriceMinor(product, last.amount, start, end);
  const refusal = priceRefusal(priceMinor);
  if (refusal) {
    const point = input.end_time === undefined ? "/period" : "/end_time";
    throw badRequest(`${point}: the term ${refusal}`, [{ point, message: `the term ${refusal}` }]);
  }
  return {
    index: 0,
    customer: last.customerId,
    product,
    amount: last.amount,
    start,
    end,
    period,
    createdWith,
    autoRenew: last.autoRenew,
    priceMinor,
  };
}

/** The term an earlier run already made, planned again exactly as it was bought. */
function plannedAs(made: SubscriptionRecord, last: SubscriptionRecord): PlannedSubscription {
  return {
    index: 0,
    customer: made.customerId,
    product: productOf(last),
    amount: made.amount,
    start: new Date(made.startTime),
    end: made.endTime === null ? null : new Date(made.endTime),
    period: made.period,
    createdWith: made.createdWith,
    autoRenew: made.autoRenew,
    priceMinor: BigInt(made.priceMinor),
  };
}

/**
 * The price a new term of `record`'s chain is bought at now: the catalog's today, as any purchase
 * and the calculator price it (an extension is "just another subscription"); the price its term
 * was bought at if its product is no longer in the catalog. An extension answered 202, or
 * resumed by its key, records it when it is accepted, and is charged it whenever it runs. A
 * product now sold per unit consumed (made depletable) has no price per hour a term could be
 * charged at: 409.
 */
export async function acceptedPrice(env: Env, record: SubscriptionRecord): Promise<AcceptedPrice> {
  const current = findProduct(await catalogKnowing(env, [record.product]), record.product);
  if (current && isDepletable(current) && !isDepletable(record)) {
    throw new AppError(
      "conflict",
      `product ${record.product} is now sold per unit consumed, not per hour: no further term of subscription ${record.id}'s chain can be bought; buy the product anew`,
    );
  }
  const { unitPriceMinor, currency } = current ?? record;
  return { unitPriceMinor, currency };
}

/** The product as the subscription bought it: prices and resources do not change under it. */
function productOf(r: SubscriptionRecord): Product {
  return {
    id: r.product,
    name: r.product,
    kind: r.kind,
    unit: "",
    unitPriceMinor: r.unitPriceMinor,
    currency: r.currency,
    quotaResource: r.quotaResource,
    aliases: [],
    delivery: r.delivery,
    vendorId: r.vendorId,
  };
}
