import type { Order } from "../db/orders";
import { findProductById } from "../db/products";
import { AppError } from "../domain/errors";
import type { PlannedSubscription, PurchaseObject } from "../domain/purchase";
import { partnerScope } from "../domain/scope";
import type { SubscriptionRecord, SubscriptionWire } from "../domain/subscriptions";
import type { WorkRef } from "../domain/work-refs";
import { subscriptionObject } from "../objects/subscription-object";
import { carryAutoRenew, extend, refuseRenewalOfEndedChain, setAutoRenew } from "./extend";
import type { OperationPayload, StoredObject } from "./intents";
import { quotaError } from "./quota-error";
import { consume, present, visibleRecord } from "./reads";
import { settleOpenPurchase } from "./recovery";
import { abandon, buy, PurchaseGivenUp, plan, unwrap } from "./subscriptions";

/** The work of the subscriptions API's writes (`OperationPayload`), wherever it runs, and what it answers. */

export interface PerformContext {
  /** The operation running the work, if it runs as one. */
  opRef?: string;
  /** A purchase's plan, already made by the request for this payload. */
  planned?: PlannedSubscription[];
  /**
   * The work runs in the request that accepted it (not a queued run, nor a retry resuming it): a
   * start, stop or resize is then the last one accepted, and applies (`superseded`).
   */
  fresh?: boolean;
  /**
   * No run of the work began before this one: its operation's first attempt (the request that
   * accepted it, `fresh`, is too). A consumption report draws only so long after its first run.
   */
  first?: boolean;
}

/**
 * What a write did, as data: the subscriptions it answers with (in wire shape), and a purchase's
 * price and orders. `src/http` renders it, now or when the operation that ran it is read.
 */
export type OperationResult =
  | { kind: "purchase"; objects: SubscriptionWire[]; totalMinor: string; currency: string; orders: Order[] }
  | { kind: "consume"; objects: SubscriptionWire[]; unallocated: number }
  /** `tagged`: the subscription is the request's own target (changed, toggled, started, stopped or cancelled), answered with its ETag. */
  | { kind: "subscription"; object: SubscriptionWire; tagged: boolean };

export function storedObject(o: PurchaseObject): StoredObject {
  const { start_time, end_time, ...rest } = o;
  return {
    ...rest,
    ...(start_time ? { start_time: start_time.toISOString() } : {}),
    ...(end_time ? { end_time: end_time.toISOString() } : {}),
  };
}

function purchaseObject(o: StoredObject): PurchaseObject {
  const { start_time, end_time, ...rest } = o;
  return {
    ...rest,
    ...(start_time ? { start_time: new Date(start_time) } : {}),
    ...(end_time ? { end_time: new Date(end_time) } : {}),
  };
}

async function one(env: Env, record: SubscriptionRecord, at: Date, tagged = false): Promise<OperationResult> {
  return { kind: "subscription", object: await present(env, record, at), tagged };
}

const vendorCouldNotProvision = () =>
  new AppError(
    "failed_dependency",
    "a vendor could not provision a syndicated subscription; nothing was bought",
  );

/** Whether a vendor reported any of subscriptions `ids` FAILED. */
async function vendorFailed(env: Env, ids: readonly string[]): Promise<boolean> {
  const records = await Promise.all(ids.map((id) => subscriptionObject(env, id).get()));
  return records.some((r) => r?.deploymentStatus === "FAILED");
}

/**
 * Does the work; null while it waits on a vendor (a syndicated purchase completes when its vendor
 * reports). Every step is idempotent for the same payload.
 */
export async function perform(
  env: Env,
  payload: OperationPayload,
  context: PerformContext = {},
): Promise<OperationResult | null> {
  const at = new Date(payload.at);
  const { opRef } = context;
  if (payload.kind === "purchase") {
    // A request that just planned the purchase hands the plan over; a queued run, a vendor's
    // report or a keyed retry plans it again, from the products as they were when it was accepted:
    // planned from a catalog changed since, it would make other subscriptions under other ids (a
    // kind now one object per subscription) or hold another resource than its first run did.
    const planned =
      context.planned ??
      (await plan(env, payload.partnerId, payload.objects.map(purchaseObject), at, payload.products))
        .subscriptions;
    // Its buyer and order would go to a vendor it was not bought from (README, "Syndication"). The
    // request that planned it has just read the vendors; a later run reads them from D1.
    const moved = context.planned || !payload.vendors ? null : await vendorMoved(env, payload.vendors);
    if (moved)
      throw new AppError(
        "conflict",
        `the vendor of product ${moved} changed after this purchase was accepted; nothing was bought: buy it again if need be`,
      );
    let bought: Awaited<ReturnType<typeof buy>>;
    try {
      bought = await buy(env, payload.partnerId, planned, payload.ids, at, {
        ...(opRef ? { operationRef: opRef } : {}),
      });
    } catch (error) {
      // Given up because its vendor reported FAILED (the undo that report began was finished by
      // the recovery sweep): it answers as that report would have.
      if (error instanceof PurchaseGivenUp && (await vendorFailed(env, payload.ids.subscriptions)))
        throw vendorCouldNotProvision();
      throw error;
    }
    if (bought.state === "waiting") return null;
    if (bought.state === "failed") {
      // Ended when it failed: `at`, when the purchase was accepted, is before a line deployed meanwhile began.
      await abandon(env, payload.ids, new Date());
      throw vendorCouldNotProvision();
    }
    // As they stand when it completes: a syndicated one's term started when its vendor deployed it.
    const completed = new Date();
    return {
      kind: "purchase",
      objects: await Promise.all(bought.subscriptions.map((r) => present(env, r, completed))),
      totalMinor: String(bought.totalMinor),
      currency: bought.currency,
      orders: bought.orders,
    };
  }
  if (payload.kind === "consume") {
    const first = context.fresh === true || context.first === true;
    const { customer, product, amount, report } = payload;
    const result = await consume(env, customer, product, amount, at, report, first);
    const objects = await Promise.all(result.touched.map((r) => present(env, r, at)));
    return { kind: "consume", objects, unallocated: result.unallocated };
  }
  // The request already found the subscription within the partner's scope (the payload's partner
  // is the record's); the object answers 404 itself should it be gone.
  const object = subscriptionObject(env, payload.subscription);
  switch (payload.kind) {
    case "update": {
      const { amount, autoRenew, expectedVersion } = payload;
      if (amount === undefined) {
        const record =
          autoRenew === undefined
            ? await visibleRecord(env, partnerScope(payload.partnerId), payload.subscription)
            : await setAutoRenew(env, payload.subscription, autoRenew, expectedVersion, operationWork(opRef));
        return one(env, record, at, true);
      }
      // As a start or stop: a running cloud is billed at its new size from when the change runs,
      // once, and not over a resize accepted after it. An auto_renew with it is set in the same
      // change, so the update takes effect whole or not at all (given up, neither part applies).
      const changedAt = new Date();
      if (autoRenew) await refuseRenewalOfEndedChain(env, payload.subscription);
      await settleOpenPurchaseOf(env, object, changedAt, "change");
      const flag = autoRenew === undefined ? undefined : { autoRenew, work: operationWork(opRef) };
      let record: SubscriptionRecord;
      try {
        record = unwrap(
          await object.changeAmount(amount, changedAt, expectedVersion, workOf(payload.ref, context), flag),
        );
      } catch (error) {
        throw quotaError(error, [
          await visibleRecord(env, partnerScope(payload.partnerId), payload.subscription),
        ]);
      }
      if (flag) await carryAutoRenew(env, record);
      return one(env, record, at, true);
    }
    case "extend": {
      const input = {
        ...(payload.period !== undefined ? { period: payload.period } : {}),
        ...(payload.endTime !== undefined ? { end_time: new Date(payload.endTime) } : {}),
      };
      const extension = await extend(
        env,
        partnerScope(payload.partnerId),
        payload.subscription,
        input,
        payload.ids,
        at,
        {
          ...(opRef ? { operationRef: opRef } : {}),
          ...(payload.price ? { price: payload.price } : {}),
        },
      );
      return one(env, extension, at);
    }
    case "auto_renew":
      return one(
        env,
        await setAutoRenew(
          env,
          payload.subscription,
          payload.value,
          payload.expectedVersion,
          operationWork(opRef),
          payload.toggle,
        ),
        at,
        true,
      );
    case "run": {
      // Applied, and billed, when it runs, not when it was accepted: a queued start charges
      // nothing for the time it waited. Run again, its reference keeps it from applying twice;
      // one a later start or stop overtook changes nothing (`Subscription.run`).
      const ranAt = new Date();
      await settleOpenPurchaseOf(env, object, ranAt, payload.action);
      return one(
        env,
        unwrap(await object.run(payload.action, ranAt, workOf(payload.ref, context))),
        ranAt,
        true,
      );
    }
    case "cancel": {
      // Also when it runs: a cloud runs, and is billed, until its cancel ends it (a queued cancel
      // fixed at its acceptance would bill nothing of a start applied while it waited).
      const cancelledAt = new Date();
      await settleOpenPurchaseOf(env, object, cancelledAt, "cancel");
      return one(
        env,
        unwrap(await object.cancel(cancelledAt, payload.expectedVersion, operationWork(opRef))),
        cancelledAt,
        true,
      );
    }
  }
}

/**
 * The first product whose vendor is no longer the one it had when the purchase was accepted
 * (`vendors`), read from D1: the catalog an instance keeps for 30 s may not know yet of a change
 * another instance made.
 */
async function vendorMoved(env: Env, vendors: Record<string, string | null>): Promise<string | null> {
  for (const [id, vendor] of Object.entries(vendors)) {
    if (((await findProductById(env, id))?.vendorId ?? null) !== vendor) return id;
  }
  return null;
}

/** A cancel or auto_renew run by operation `opRef`: it does not apply once that was given up (`giveUpWork`). */
const operationWork = (opRef: string | undefined): WorkRef => (opRef ? { ref: opRef } : {});

const workOf = (ref: string | undefined, context: PerformContext): WorkRef => ({
  ref,
  fresh: context.fresh === true,
});

/**
 * `settleOpenPurchase` for the subscription of `object`: a cloud whose purchase has not taken
 * effect (a vendor has not delivered it, a request died before its orders) neither runs nor
 * changes size, so nothing is billed or held for what may never be bought.
 */
async function settleOpenPurchaseOf(
  env: Env,
  object: ReturnType<typeof subscriptionObject>,
  at: Date,
  action: Parameters<typeof settleOpenPurchase>[3],
): Promise<void> {
  const record = await object.get();
  if (record) await settleOpenPurchase(env, record, at, action);
}

/**
 * Gives up the start, stop or resize of `payload` unless it applied already (`giveUpWork`): a run
 * of it still under way then changes nothing, so an operation given up as "did not take effect"
 * stays true to what the subscription shows.
 */
export async function giveUpWork(env: Env, payload: OperationPayload, opRef: string): Promise<void> {
  if (payload.kind === "purchase" || payload.kind === "extend" || payload.kind === "consume") return;
  const object = subscriptionObject(env, payload.subscription);
  // A start, stop or resize applies under its reference; a cancel or an auto_renew (an update's
  // too) under its operation's. A subscription gone has nothing the work could apply to.
  const resizes = payload.kind === "run" || (payload.kind === "update" && payload.amount !== undefined);
  if (resizes && payload.ref !== undefined) await object.giveUpWork(payload.ref);
  if (payload.kind !== "run" && (payload.kind !== "update" || payload.autoRenew !== undefined))
    await object.giveUpWork(opRef);
}

/**
 * The result of work that took effect although its run did not get to store it (the attempt
 * died after it), read off the subscription; null for work not in effect, and for a purchase,
 * an extension or a report, which are settled by their commissions instead. An auto_renew in
 * effect is carried along the chain first: the attempt may have died before it got there.
 */
export async function resultInEffect(env: Env, payload: OperationPayload): Promise<OperationResult | null> {
  if (payload.kind === "purchase" || payload.kind === "extend" || payload.kind === "consume") return null;
  const r = await subscriptionObject(env, payload.subscription).get();
  if (!r) return null;
  const now = new Date();
  switch (payload.kind) {
    case "run":
      return payload.ref !== undefined && r.ranBy?.includes(payload.ref) ? one(env, r, now, true) : null;
    case "update": {
      const resized =
        payload.amount === undefined || (payload.ref !== undefined && r.resizedBy?.includes(payload.ref));
      const toggled = payload.autoRenew === undefined || r.autoRenew === payload.autoRenew;
      if (!resized || !toggled) return null;
      if (payload.autoRenew !== undefined) await carryAutoRenew(env, r);
      return one(env, r, now, true);
    }
    case "auto_renew":
      // A toggle applied is known by its reference: the flag it set may have been flipped back since.
      if (
        payload.toggle !== undefined ? !r.toggledBy?.includes(payload.toggle) : r.autoRenew !== payload.value
      )
        return null;
      await carryAutoRenew(env, r);
      return one(env, r, now, true);
    case "cancel":
      return r.endedAt !== null ? one(env, r, now, true) : null;
  }
}
