import {
  claimStalledOperations,
  createOperation,
  findOperation,
  finishOperation,
  markWaiting,
  type Operation,
  startOperation,
  waitingPurchases,
} from "../db/operations";
import type { Order } from "../db/orders";
import { AppError, type ErrorWire, fromErrorWire, isFinalAnswer, toErrorWire } from "../domain/errors";
import { fault } from "../domain/faults";
import { logError } from "../domain/log";
import type { PlannedSubscription, PurchaseObject } from "../domain/purchase";
import { recoveryBoundMs } from "../domain/recovery";
import { EVERYTHING, partnerScope } from "../domain/scope";
import type { SubscriptionRecord, SubscriptionWire, WorkRef } from "../domain/subscriptions";
import { operationsQueue } from "../objects/operations-queue";
import { subscriptionObject } from "../objects/subscription-object";
import { extend, setAutoRenew } from "./extend";
import type { OperationPayload, StoredObject } from "./intents";
import { quotaError } from "./quota-error";
import { consume, present, visibleRecord } from "./reads";
import { settleOpenPurchase } from "./recovery";
import { abandon, buy, type PurchaseIds, plan, unwrap } from "./subscriptions";

/** Running the work of the subscriptions API's writes (`OperationPayload`), now or as an operation. */

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
}

/** Attempts before an operation is given up as failed (the queue's max_retries is above this). */
export const MAX_ATTEMPTS = 8;

/**
 * What a write did, as data: the subscriptions it answers with (in wire shape), and a purchase's
 * price and orders. `src/http` renders it, now or when the operation that ran it is read.
 */
export type OperationResult =
  | { kind: "purchase"; objects: SubscriptionWire[]; totalMinor: string; currency: string; orders: Order[] }
  | { kind: "consume"; objects: SubscriptionWire[]; unallocated: number }
  /** `tagged`: the subscription is the request's own target (changed or cancelled), answered with its ETag. */
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
    // A request that just planned the purchase hands the plan over; a queued run plans it again.
    const planned =
      context.planned ??
      (await plan(env, payload.partnerId, payload.objects.map(purchaseObject), at)).subscriptions;
    const bought = await buy(env, payload.partnerId, planned, payload.ids, at, {
      ...(opRef ? { operationRef: opRef } : {}),
    });
    if (bought.state === "waiting") return null;
    if (bought.state === "failed") {
      await abandon(env, payload.ids, at);
      throw new AppError(
        "failed_dependency",
        "a vendor could not provision a syndicated subscription; nothing was bought",
      );
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
    const result = await consume(env, payload.customer, payload.product, payload.amount, at, payload.report);
    const objects = await Promise.all(result.touched.map((r) => present(env, r, at)));
    return { kind: "consume", objects, unallocated: result.unallocated };
  }
  // The request already found the subscription within the partner's scope (the payload's partner
  // is the record's); the object answers 404 itself should it be gone.
  const object = subscriptionObject(env, payload.subscription);
  switch (payload.kind) {
    case "update": {
      // The If-Match version guards the first change; a second follows it within the same request.
      const { amount, autoRenew, expectedVersion } = payload;
      let record: SubscriptionRecord | null = null;
      if (amount !== undefined) {
        // As a start or stop: a running cloud is billed at its new size from when the change runs,
        // once, and not over a resize accepted after it.
        const changedAt = new Date();
        await settleOpenPurchaseOf(env, object, changedAt, "change");
        try {
          record = unwrap(
            await object.changeAmount(amount, changedAt, expectedVersion, workOf(payload.ref, context)),
          );
        } catch (error) {
          throw quotaError(error, [
            await visibleRecord(env, partnerScope(payload.partnerId), payload.subscription),
          ]);
        }
      }
      if (autoRenew !== undefined)
        record = await setAutoRenew(
          env,
          payload.subscription,
          autoRenew,
          record ? undefined : expectedVersion,
        );
      record ??= await visibleRecord(env, partnerScope(payload.partnerId), payload.subscription);
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
        },
      );
      return one(env, extension, at);
    }
    case "auto_renew":
      return one(
        env,
        await setAutoRenew(env, payload.subscription, payload.value, payload.expectedVersion),
        at,
      );
    case "run": {
      // Applied, and billed, when it runs, not when it was accepted: a queued start charges
      // nothing for the time it waited. Run again, its reference keeps it from applying twice;
      // one a later start or stop overtook changes nothing (`Subscription.run`).
      const ranAt = new Date();
      await settleOpenPurchaseOf(env, object, ranAt, payload.action);
      return one(env, unwrap(await object.run(payload.action, ranAt, workOf(payload.ref, context))), ranAt);
    }
    case "cancel": {
      // Also when it runs: a cloud runs, and is billed, until its cancel ends it (a queued cancel
      // fixed at its acceptance would bill nothing of a start applied while it waited).
      const cancelledAt = new Date();
      await settleOpenPurchaseOf(env, object, cancelledAt, "cancel");
      return one(env, unwrap(await object.cancel(cancelledAt, payload.expectedVersion)), cancelledAt, true);
    }
  }
}

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

export const newOpRef = () => `op_${crypto.randomUUID().replaceAll("-", "")}`;

/**
 * Does the work within the request. Work that nothing will run again (`resumable` false: no
 * Idempotency-Key keeps it) is undone before a server fault; work kept with its key is left for
 * the retry to finish, or for the recovery sweep should the client never come back.
 */
export async function performNow(
  env: Env,
  payload: OperationPayload,
  options: { resumable: boolean; fresh: boolean; planned?: PlannedSubscription[] | undefined },
): Promise<OperationResult> {
  let result: OperationResult | null;
  try {
    result = await perform(env, payload, {
      fresh: options.fresh,
      ...(options.planned ? { planned: options.planned } : {}),
    });
  } catch (error) {
    if (!options.resumable && !isFinalAnswer(error)) await undoHalfDone(env, payload);
    throw error;
  }
  if (!result) throw new AppError("internal", "work that waits on a vendor must run as an operation");
  return result;
}

/** Stores the work as operation `opRef` (once) and queues it; answers the operation as stored. */
export async function enqueueOperation(
  env: Env,
  payload: OperationPayload,
  opRef: string,
): Promise<Operation> {
  const op = await createOperation(env, {
    opRef,
    partnerId: payload.partnerId,
    customerId: payload.kind === "consume" ? payload.customer : (payload.customerId ?? null),
    kind: payload.kind,
    payload,
    now: new Date(),
  });
  if (op.status === "queued") await operationsQueue(env).send({ opRef });
  return op;
}

/**
 * How a finished operation ended: the result it stored, or the error it failed with. Null while it
 * is queued or running, and for a row finished before results were stored as data, which keeps
 * its rendered answer in `resultStatus`, `resultBody` and `resultLocation` until its retention ends.
 */
export function outcomeOf(
  op: Operation,
): { ok: true; result: OperationResult } | { ok: false; error: AppError } | null {
  if (op.resultBody === null || op.resultStatus !== null) return null;
  if (op.status === "failed")
    return { ok: false, error: fromErrorWire(JSON.parse(op.resultBody) as ErrorWire) };
  return { ok: true, result: JSON.parse(op.resultBody) as OperationResult };
}

/**
 * Runs one queued operation. A failure of the work itself (a 4xx) is its final answer and is
 * kept; anything else is thrown so the queue delivers the message again.
 */
export async function runOperation(env: Env, opRef: string): Promise<void> {
  const now = new Date();
  const op = await startOperation(env, opRef, now);
  if (!op) return;
  try {
    fault("operation.started");
    const result = await perform(env, op.payload as unknown as OperationPayload, { opRef });
    if (!result) return markWaiting(env, opRef);
    fault("operation.performed");
    await finishOperation(
      env,
      opRef,
      { status: "succeeded", resultBody: JSON.stringify(result) },
      new Date(),
    );
  } catch (error) {
    if (!isFinalAnswer(error)) throw error;
    await failOperation(env, opRef, error);
  }
}

/**
 * Work given up after it failed for a reason not its own (a request's 5xx, an operation out of
 * attempts) may have bought half of something: a purchase or an extension undoes what its
 * commission did not make final (`abandon`). Best effort: a failure here is logged, and the
 * commission, still open, shows as pending.
 */
async function undoHalfDone(env: Env, payload: OperationPayload): Promise<void> {
  try {
    const ids = await purchaseIdsOf(env, payload);
    if (ids) await abandon(env, ids, new Date());
  } catch (error) {
    logError("purchase.undo_failed", error, { kind: payload.kind, partnerId: payload.partnerId });
  }
}

/** The ids of what a payload buys, if it buys anything. */
async function purchaseIdsOf(env: Env, payload: OperationPayload): Promise<PurchaseIds | null> {
  if (payload.kind === "purchase") return payload.ids;
  if (payload.kind !== "extend") return null;
  // An extension is bought for the customer of the chain it extends.
  const base = await subscriptionObject(env, payload.subscription).get();
  return base
    ? { orders: { [base.customerId]: payload.ids.order }, subscriptions: [payload.ids.subscription] }
    : null;
}

/**
 * The result of work that took effect although its run did not get to store it (the attempt
 * died after it), read off the subscription; null for work not in effect, and for a purchase,
 * an extension or a report, which are settled by their commissions instead.
 */
async function resultInEffect(env: Env, payload: OperationPayload): Promise<OperationResult | null> {
  if (payload.kind === "purchase" || payload.kind === "extend" || payload.kind === "consume") return null;
  const r = await subscriptionObject(env, payload.subscription).get();
  if (!r) return null;
  const now = new Date();
  switch (payload.kind) {
    case "run":
      return payload.ref !== undefined && r.ranBy?.includes(payload.ref) ? one(env, r, now) : null;
    case "update": {
      const resized =
        payload.amount === undefined || (payload.ref !== undefined && r.resizedBy?.includes(payload.ref));
      const toggled = payload.autoRenew === undefined || r.autoRenew === payload.autoRenew;
      return resized && toggled ? one(env, r, now, true) : null;
    }
    case "auto_renew":
      return r.autoRenew === payload.value ? one(env, r, now) : null;
    case "cancel":
      return r.endedAt !== null ? one(env, r, now, true) : null;
  }
}

/**
 * An operation out of attempts. Work that took effect on its last attempt (a start applied, the
 * attempt dead before it stored its result) succeeded: it says so, as the subscription shows.
 * Otherwise what it did half-way is undone, and it fails with a 409, the 4xx the CaaS spec has
 * its status endpoint keep for an error during processing (a 5xx there would read as the status
 * endpoint failing, and a client would poll on for good).
 */
export async function giveUpOperation(env: Env, opRef: string): Promise<void> {
  const op = await findOperation(env, opRef, EVERYTHING);
  const payload = op?.payload as unknown as OperationPayload | undefined;
  const done = payload ? await resultInEffect(env, payload) : null;
  if (done) {
    await finishOperation(env, opRef, { status: "succeeded", resultBody: JSON.stringify(done) }, new Date());
    return;
  }
  if (payload) await undoHalfDone(env, payload);
  await failOperation(
    env,
    opRef,
    new AppError(
      "conflict",
      `the operation could not be completed in ${MAX_ATTEMPTS} attempts and was given up: a purchase it made half-way was undone; read the subscription for where it stands, and send the request again if need be`,
    ),
  );
}

/**
 * Queues again every operation that made no progress for the recovery bound and is not waiting on a
 * vendor, or gives it up (undoing what it did half-way) once it used its attempts. Run by the cron.
 */
export async function requeueStalledOperations(
  env: Env,
  now: Date,
): Promise<{ requeued: number; givenUp: number }> {
  const counts = { requeued: 0, givenUp: 0 };
  const PAGE = 100;
  for (;;) {
    const before = new Date(now.getTime() - recoveryBoundMs(env));
    const page = await claimStalledOperations(env, before, now, PAGE);
    const spent = page.filter((op) => op.attempts >= MAX_ATTEMPTS);
    for (const op of spent) await giveUpOperation(env, op.opRef);
    const again = page
      .filter((op) => op.attempts < MAX_ATTEMPTS)
      .map((op) => ({ body: { opRef: op.opRef } }));
    if (again.length > 0) await operationsQueue(env).sendBatch(again);
    counts.givenUp += spent.length;
    counts.requeued += again.length;
    if (page.length < PAGE) return counts;
  }
}

/** How long a syndicated purchase waits for its vendor before it is undone. */
export const VENDOR_DEADLINE_MS = 7 * 86_400_000;

/**
 * Undoes the purchases whose vendor has not reported within the deadline: their quota is
 * released and their operation fails (424), as if the vendor had reported FAILED.
 */
export async function abandonOverduePurchases(env: Env, now: Date): Promise<number> {
  const overdue = await waitingPurchases(env, new Date(now.getTime() - VENDOR_DEADLINE_MS), 100);
  for (const op of overdue) {
    const payload = op.payload as unknown as Extract<OperationPayload, { kind: "purchase" }>;
    // A vendor's DEPLOYED may have settled it meanwhile: then it completes as that would.
    if ((await abandon(env, payload.ids, now)) === "took effect") {
      await runOperation(env, op.opRef);
      continue;
    }
    await failOperation(
      env,
      op.opRef,
      new AppError("failed_dependency", "the vendor did not provision within 7 days; nothing was bought"),
    );
  }
  return overdue.length;
}

export async function failOperation(env: Env, opRef: string, error: AppError): Promise<void> {
  await finishOperation(
    env,
    opRef,
    { status: "failed", resultBody: JSON.stringify(toErrorWire(error)) },
    new Date(),
  );
}
