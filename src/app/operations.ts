import {
  claimStalledOperations,
  createOperation,
  deferWaiting,
  findOperation,
  finishOperation,
  markWaiting,
  type Operation,
  startOperation,
  waitingPurchases,
} from "../db/operations";
import { type Allowance, type Spending, shareOfInvocation, UNBOUNDED } from "../domain/budget";
import { PARTLY_DRAINED } from "../domain/consumption";
import { AppError, type ErrorWire, fromErrorWire, isFinalAnswer, toErrorWire } from "../domain/errors";
import { fault } from "../domain/faults";
import { uuidv7 } from "../domain/ids";
import { logError } from "../domain/log";
import type { PlannedSubscription } from "../domain/purchase";
import { recoveryBoundMs } from "../domain/recovery";
import { EVERYTHING } from "../domain/scope";
import type { SubscriptionRecord } from "../domain/subscriptions";
import { operationsQueue } from "../objects/operations-queue";
import { subscriptionObject } from "../objects/subscription-object";
import { nearChainEnd } from "./extend";
import type { OperationPayload } from "./intents";
import { giveUpWork, type OperationResult, perform, resultInEffect } from "./perform";
import { abandon, type PurchaseIds } from "./subscriptions";

/** Attempts before an operation is given up as failed (the queue's max_retries is above this). */
export const MAX_ATTEMPTS = 8;

/**
 * A new operation's reference: time-ordered (a UUIDv7), as every id a list pages by is, so
 * `GET /v1/operations` (ordered by it) lists them oldest first, as it says.
 */
export const newOpRef = () => `op_${uuidv7().replaceAll("-", "")}`;

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
    // Attempts are counted as each run starts (a consumption report's never start over).
    const first = op.attempts === 1;
    const result = await perform(env, op.payload as unknown as OperationPayload, { opRef, first });
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
 * Runs at once the purchase a vendor's report (DEPLOYED or FAILED) settles or undoes. The report
 * took effect whatever happens here: its push queued the same operation too, so a run that fails
 * now runs again from there, and the vendor is answered as reported rather than with a 5xx.
 */
export async function runReported(env: Env, opRef: string): Promise<void> {
  try {
    await runOperation(env, opRef);
  } catch (error) {
    logError("vendor.report.run_failed", error, { opRef });
  }
}

/**
 * Work given up after it failed for a reason not its own (a request's 5xx, an operation out of
 * attempts) may have bought half of something: a purchase or an extension undoes what its
 * commission did not make final (`abandon`). Best effort: a failure here is logged ("failed": it
 * is not known whether it took effect), and the commission, still open, shows as pending.
 */
async function undoHalfDone(
  env: Env,
  payload: OperationPayload,
): Promise<"undone" | "took effect" | "failed" | null> {
  try {
    const ids = await purchaseIdsOf(env, payload);
    return ids ? await abandon(env, ids, new Date()) : null;
  } catch (error) {
    logError("purchase.undo_failed", error, { kind: payload.kind, partnerId: payload.partnerId });
    return "failed";
  }
}

/** The ids of what a payload buys, if it buys anything. */
async function purchaseIdsOf(env: Env, payload: OperationPayload): Promise<PurchaseIds | null> {
  if (payload.kind === "purchase") return payload.ids;
  if (payload.kind !== "extend") return null;
  // An extension is bought for the customer of the chain it extends.
  const base = await subscriptionObject(env, payload.subscription).get();
  if (!base) return null;
  // The term whose place it reserved: the undo gives the place back even when the extension's own
  // object was never created (its request died before), or the chain would wait on it. The walk
  // starts near the chain's end (`nearChainEnd`): from the term named, a chain of more terms than
  // the walk's bound kept the place reserved until the recovery bound.
  let term: SubscriptionRecord | null = await nearChainEnd(env, base, null);
  for (let hops = 0; term && term.nextId !== null && term.nextId !== payload.ids.subscription; hops++) {
    term = hops < 1000 ? await subscriptionObject(env, term.nextId).get() : null;
  }
  return {
    orders: { [base.customerId]: payload.ids.order },
    subscriptions: [payload.ids.subscription],
    ...(term?.nextId === payload.ids.subscription ? { previous: term.id } : {}),
  };
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
  // A start, stop or resize whose last attempt may still be under way is decided first: applied,
  // it succeeded; otherwise it can no longer apply, and failing it says what the cloud shows.
  if (payload) await giveUpWork(env, payload, opRef);
  const done = payload ? await resultInEffect(env, payload) : null;
  if (done) {
    await finishOperation(env, opRef, { status: "succeeded", resultBody: JSON.stringify(done) }, new Date());
    return;
  }
  const undone = payload ? await undoHalfDone(env, payload) : null;
  // Whether it took effect is not known (the undo failed): answered "undone, send it again", it
  // could be bought twice. The stalled-operation sweep's next give-up decides it.
  if (undone === "failed") return;
  // A purchase or extension whose commission was accepted took effect, and a report is applied
  // once whatever runs it: either is run once more for its answer (every step of it is
  // idempotent), never answered "undone, send it again", which would buy or drain twice.
  if (undone === "took effect" || payload?.kind === "consume") {
    try {
      await runOperation(env, opRef);
      return;
    } catch (error) {
      logError("operation.give_up_failed", error, { opRef, kind: payload?.kind });
      // What took effect is finished by the stalled-operation sweep's next give-up, not failed.
      if (undone === "took effect") return;
    }
  }
  await failOperation(env, opRef, new AppError("conflict", givenUpMessage(payload?.kind)));
}

/** What an operation given up says it did: a client reads it to decide whether to send it again. */
function givenUpMessage(kind: OperationPayload["kind"] | undefined): string {
  const given = `the operation could not be completed in ${MAX_ATTEMPTS} attempts and was given up`;
  if (kind === "purchase" || kind === "extend")
    return `${given}: what it bought half-way was undone and nothing is charged; send the request again if need be`;
  if (kind === "consume") return `${given}: ${PARTLY_DRAINED}`;
  return `${given}: it did not take effect; read the subscription for where it stands, and send the request again if need be`;
}

/**
 * How many stalled operations one sweep claims at most (a page of 100 a D1 query): the cron's
 * invocation has its other steps to run within the same limits. The rest stay stalled, for the next run.
 */
export const STALLED_PER_RUN = 500;

/**
 * The share of the cron's invocation (src/domain/budget.ts) the sweep's give-ups may spend: each
 * runs its undo (about 6 D1 queries and 3 object calls, more for a purchase of many subscriptions),
 * so 500 of them would pass D1's 1,000 queries on their own and fail every step after. Once it is
 * spent the sweep claims only what it queues again (a send a page); the operations out of
 * attempts stay stalled for the next run, the longest stalled first.
 */
export const GIVE_UPS_SHARE: Spending = shareOfInvocation(0.3);

/**
 * Queues again every operation that made no progress for the recovery bound and is not waiting on a
 * vendor, or gives it up (undoing what it did half-way) once it used its attempts, the longest
 * stalled first, `STALLED_PER_RUN` at most, the give-ups within `share` (see `GIVE_UPS_SHARE`). Run by the cron.
 */
export async function requeueStalledOperations(
  env: Env,
  now: Date,
  share: Allowance = UNBOUNDED,
): Promise<{ requeued: number; givenUp: number }> {
  const counts = { requeued: 0, givenUp: 0 };
  const PAGE = 100;
  let claimed = 0;
  for (;;) {
    const before = new Date(now.getTime() - recoveryBoundMs(env));
    const limit = Math.min(PAGE, STALLED_PER_RUN - claimed);
    if (limit <= 0) return counts;
    // With the give-ups' share spent, only what is queued again is claimed: the rest stay stalled.
    const page = await claimStalledOperations(env, before, now, limit, share.left ? undefined : MAX_ATTEMPTS);
    claimed += page.length;
    const spent = page.filter((op) => op.attempts >= MAX_ATTEMPTS);
    for (const op of spent) {
      // Claimed but left once the share is spent (its page was claimed before): found again once
      // the bound has passed, as one whose give-up fails here; the others go on.
      if (!share.left) break;
      await giveUpOperation(env, op.opRef).catch((error: unknown) =>
        logError("operation.retrying", error, { opRef: op.opRef, attempts: op.attempts }),
      );
      counts.givenUp += 1;
    }
    const again = page
      .filter((op) => op.attempts < MAX_ATTEMPTS)
      .map((op) => ({ body: { opRef: op.opRef } }));
    if (again.length > 0) await operationsQueue(env).sendBatch(again);
    counts.requeued += again.length;
    if (page.length < limit) return counts;
  }
}

/** How long a syndicated purchase waits for its vendor before it is undone. */
export const VENDOR_DEADLINE_MS = 7 * 86_400_000;

/**
 * How many overdue purchases one cron run tries at most (each a few D1 queries and object calls):
 * the run has its other steps to do within one invocation's limits. The rest wait for the next run.
 */
export const OVERDUE_PER_RUN = 100;

/**
 * The share of the cron's invocation (src/domain/budget.ts) the overdue purchases' undos may spend:
 * about 4 D1 queries and 4 object calls each, more for a purchase of many subscriptions or customers.
 */
export const OVERDUE_SHARE: Spending = shareOfInvocation(0.3);

/**
 * Undoes the purchases whose vendor has not reported within the deadline: their quota is
 * released and their operation fails (424), as if the vendor had reported FAILED. The least
 * recently tried first, `OVERDUE_PER_RUN` a run and within `share` (see `OVERDUE_SHARE`): the
 * ones not tried wait for the next run, ahead of the ones tried; one that fails is moved behind the
 * others (`deferWaiting`; the next runs try it again), so purchases that keep failing never take
 * the place of the others.
 */
export async function abandonOverduePurchases(
  env: Env,
  now: Date,
  share: Allowance = UNBOUNDED,
): Promise<number> {
  const overdue = await waitingPurchases(env, new Date(now.getTime() - VENDOR_DEADLINE_MS), OVERDUE_PER_RUN);
  let abandoned = 0;
  for (const op of overdue) {
    if (!share.left) break;
    if (await abandonOverdue(env, op, now)) abandoned += 1;
  }
  return abandoned;
}

/** Undoes overdue purchase `op` (`abandonOverduePurchases`): whether it was undone. */
async function abandonOverdue(env: Env, op: Operation, now: Date): Promise<boolean> {
  const payload = op.payload as unknown as Extract<OperationPayload, { kind: "purchase" }>;
  try {
    // Every vendor reported in time (its report's run never began, or its wake of the operation
    // is still queued): the report decides, not the deadline.
    if (await allReported(env, payload.ids.subscriptions)) {
      await runOperation(env, op.opRef);
      return false;
    }
    // A vendor's DEPLOYED may have settled it meanwhile: then it completes as that would.
    if ((await abandon(env, payload.ids, now)) === "took effect") {
      await runOperation(env, op.opRef);
      return false;
    }
    await failOperation(
      env,
      op.opRef,
      new AppError("failed_dependency", "the vendor did not provision within 7 days; nothing was bought"),
    );
    return true;
  } catch (error) {
    // The next runs try it again, after the others; the others go on now.
    logError("operation.retrying", error, { opRef: op.opRef, attempts: op.attempts });
    await deferWaiting(env, op.opRef, now).catch(() => undefined);
    return false;
  }
}

/** Whether subscriptions `ids` all exist and none still waits on its vendor's report. */
async function allReported(env: Env, ids: readonly string[]): Promise<boolean> {
  const records = await Promise.all(ids.map((id) => subscriptionObject(env, id).get()));
  return records.every((r) => r !== null && r.deploymentStatus !== "PENDING");
}

export async function failOperation(env: Env, opRef: string, error: AppError): Promise<void> {
  await finishOperation(
    env,
    opRef,
    { status: "failed", resultBody: JSON.stringify(toErrorWire(error)) },
    new Date(),
  );
}
