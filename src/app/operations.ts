import {
  claimStalledOperations,
  createOperation,
  findOperation,
  finishOperation,
  markWaiting,
  startOperation,
  waitingPurchases,
} from "../db/operations";
import type { OperationStatus } from "../db/schema";
import { fault } from "../domain/faults";
import type { JsonText } from "../domain/json";
import type { PlannedSubscription, PurchaseObject } from "../domain/purchase";
import { recoveryBoundMs } from "../domain/recovery";
import { money, type SubscriptionRecord, type SubscriptionWire } from "../domain/subscriptions";
import type { Env } from "../env";
import { AppError } from "../http/errors";
import { problemResponse } from "../http/problem";
import { orderView } from "../http/views";
import type { RecoveryRequest } from "../objects/quota-ledger";
import { subscriptionObject } from "../objects/subscription-object";
import { extend } from "./extend";
import { type Intent, journalOf, type OperationPayload, type StoredObject } from "./intents";
import { consume, present, visibleRecord } from "./reads";
import { settleOpenPurchase } from "./recovery";
import { abandon, buy, type PurchaseIds, plan, unwrap } from "./subscriptions";

/** Running the work of the subscriptions API's writes (`OperationPayload`), now or as an operation. */

export interface PerformContext {
  /** The operation running the work, if it runs as one. */
  opRef?: string;
  /** A purchase's plan, already made by the request for this payload. */
  planned?: PlannedSubscription[];
}

/** Runs operation `opRef`; or (`recover`) settles a commission whose request may be gone. */
export type OperationMessage = { opRef: string } | { recover: RecoveryRequest };

/** Attempts before an operation is given up as failed (the queue's max_retries is above this). */
export const MAX_ATTEMPTS = 8;

interface Result<S extends number, B, L extends string | null> {
  status: S;
  body: B;
  location: L;
}

export type PurchaseView = {
  objects: SubscriptionWire[];
  meta: { total_price: string; currency: string; orders: ReturnType<typeof orderView>[] };
};
export type ConsumptionView = { objects: SubscriptionWire[]; meta: { unallocated: number } };

/** What the work of each kind answers once done. */
export interface ResultOf {
  purchase: Result<201, PurchaseView, string>;
  consume: Result<200, ConsumptionView, null>;
  update: Result<200, SubscriptionWire, string>;
  extend: Result<200, SubscriptionWire, string>;
  auto_renew: Result<200, SubscriptionWire, string>;
  run: Result<200, SubscriptionWire, string>;
  cancel: Result<200, SubscriptionWire, string>;
}

type Kind = OperationPayload["kind"];
export type PayloadOf<K extends Kind> = Extract<OperationPayload, { kind: K }>;
export type OperationResult = ResultOf[Kind];

/** A write's answer: its result, or (202) the operation that will run it. */
export type Answer<K extends Kind> = ResultOf[K] | { status: 202; operation: OperationView };

const location = (id: string) => `/v1/subscriptions/${id}/`;

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

async function one(env: Env, record: SubscriptionRecord, at: Date): Promise<ResultOf["update"]> {
  return { status: 200, body: await present(env, record, at), location: location(record.id) };
}

type Performer<K extends Kind> = (
  env: Env,
  payload: PayloadOf<K>,
  context: PerformContext,
) => Promise<ResultOf[K] | null>;

async function performPurchase(
  env: Env,
  payload: PayloadOf<"purchase">,
  context: PerformContext,
): Promise<ResultOf["purchase"] | null> {
  const at = new Date(payload.at);
  const { opRef } = context;
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
  const objects = await Promise.all(bought.subscriptions.map((r) => present(env, r, at)));
  const first = bought.subscriptions[0];
  if (!first) throw new AppError("internal", "a purchase bought nothing");
  return {
    status: 201,
    body: {
      objects,
      meta: {
        total_price: money(bought.totalMinor, bought.currency),
        currency: bought.currency,
        orders: bought.orders.map(orderView),
      },
    },
    location: location(first.id),
  };
}

async function performConsume(env: Env, payload: PayloadOf<"consume">): Promise<ResultOf["consume"]> {
  const at = new Date(payload.at);
  const result = await consume(env, payload.customer, payload.product, payload.amount, at, payload.report);
  const objects = await Promise.all(result.touched.map((r) => present(env, r, at)));
  return { status: 200, body: { objects, meta: { unallocated: result.unallocated } }, location: null };
}

// The request already found the subscription within the partner's scope (the payload's partner
// is the record's); the object answers 404 itself should it be gone.
const object = (env: Env, payload: { subscription: string }) => subscriptionObject(env, payload.subscription);

/**
 * The work of each kind; null while it waits on a vendor (a syndicated purchase completes when
 * its vendor reports). Every step is idempotent for the same payload.
 */
const PERFORMERS: { [K in Kind]: Performer<K> } = {
  purchase: performPurchase,
  consume: performConsume,
  async update(env, payload) {
    const at = new Date(payload.at);
    let record: SubscriptionRecord | null = null;
    if (payload.amount !== undefined)
      record = unwrap(await object(env, payload).changeAmount(payload.amount, at));
    if (payload.autoRenew !== undefined)
      record = unwrap(await object(env, payload).setAutoRenew(payload.autoRenew));
    return one(env, record ?? (await visibleRecord(env, payload.partnerId, payload.subscription)), at);
  },
  async extend(env, payload, { opRef }) {
    const at = new Date(payload.at);
    const input = {
      ...(payload.period !== undefined ? { period: payload.period } : {}),
      ...(payload.endTime !== undefined ? { end_time: new Date(payload.endTime) } : {}),
    };
    const extension = await extend(env, payload.partnerId, payload.subscription, input, payload.ids, at, {
      ...(opRef ? { operationRef: opRef } : {}),
    });
    return one(env, extension, at);
  },
  async auto_renew(env, payload) {
    return one(env, unwrap(await object(env, payload).setAutoRenew(payload.value)), new Date(payload.at));
  },
  async run(env, payload) {
    const at = new Date(payload.at);
    return one(env, unwrap(await object(env, payload).run(payload.action, at)), at);
  },
  async cancel(env, payload) {
    const at = new Date(payload.at);
    const record = await object(env, payload).get();
    if (record) await settleOpenPurchase(env, record, at);
    return one(env, unwrap(await object(env, payload).cancel(at)), at);
  },
};

/** Does the work of `payload`: its kind's result, or null while it waits on a vendor. */
export function perform<K extends Kind>(
  env: Env,
  payload: PayloadOf<K>,
  context: PerformContext = {},
): Promise<ResultOf[K] | null> {
  // The record maps each kind to its own performer, which TypeScript cannot follow through an index.
  const performer = PERFORMERS[payload.kind] as unknown as Performer<K>;
  return performer(env, payload, context);
}

export function prefersAsync(request: Request): boolean {
  const prefer = request.headers.get("prefer") ?? "";
  return prefer.split(/[,;]/).some((token) => token.trim().toLowerCase() === "respond-async");
}

export const operationLocation = (opRef: string) => `/v1/operations/${opRef}`;

/**
 * Answers a write: the result now, or 202 and an operation to poll when the client asks for it
 * or the work cannot finish within the request (`mustWait`: a vendor has to provision first).
 * Under an Idempotency-Key the work is recorded with the key before any of it is done.
 */
export async function respond<K extends Kind>(
  env: Env,
  request: Request,
  payload: PayloadOf<K>,
  options: { mustWait?: boolean; planned?: PlannedSubscription[] } = {},
): Promise<Answer<K>> {
  const journal = journalOf(request);
  const opRef =
    options.mustWait || prefersAsync(request) ? `op_${crypto.randomUUID().replaceAll("-", "")}` : null;
  await journal?.record({ payload, opRef });
  if (opRef) return enqueue(env, payload, opRef);
  return answerNow(env, payload, { resumable: journal !== undefined, planned: options.planned });
}

/**
 * Resumes what a request that died had committed to: the same payload, with the same ids, so
 * what the first attempt did is found and finished, never done twice.
 */
export function resume(env: Env, intent: Intent): Promise<Answer<Kind>> {
  if (intent.opRef) return enqueue(env, intent.payload, intent.opRef);
  return answerNow(env, intent.payload, { resumable: true });
}

async function answerNow<K extends Kind>(
  env: Env,
  payload: PayloadOf<K>,
  options: { resumable: boolean; planned?: PlannedSubscription[] | undefined },
): Promise<ResultOf[K]> {
  let result: ResultOf[K] | null;
  try {
    result = await perform(env, payload, options.planned ? { planned: options.planned } : {});
  } catch (error) {
    // Work that nothing will run again is undone before the 5xx. Work kept with its key is left
    // for the retry to finish, or for the recovery sweep should the client never come back.
    if (!options.resumable && (!(error instanceof AppError) || error.status >= 500))
      await undoHalfDone(env, payload);
    throw error;
  }
  if (!result) throw new AppError("internal", "work that waits on a vendor must run as an operation");
  return result;
}

/** Stores the work as operation `opRef` (once) and queues it: 202 and where to poll. */
async function enqueue(
  env: Env,
  payload: OperationPayload,
  opRef: string,
): Promise<{ status: 202; operation: OperationView }> {
  const op = await createOperation(env, {
    opRef,
    partnerId: payload.partnerId,
    kind: payload.kind,
    payload,
    now: new Date(),
  });
  if (op.status === "queued") await env.OPERATIONS.send({ opRef });
  return { status: 202, operation: operationView(op) };
}

export interface OperationView {
  opRef: string;
  kind: Kind;
  status: OperationStatus;
  created_at: string;
  updated_at: string;
  result_status: number | null;
  result_location: string | null;
}

export function operationView(op: {
  opRef: string;
  kind: string;
  status: OperationStatus;
  createdAt: string;
  updatedAt: string;
  resultStatus: number | null;
  resultLocation: string | null;
}): OperationView {
  return {
    opRef: op.opRef,
    // Stored from an OperationPayload's kind (createOperation).
    kind: op.kind as Kind,
    status: op.status,
    created_at: op.createdAt,
    updated_at: op.updatedAt,
    result_status: op.resultStatus,
    result_location: op.resultLocation,
  };
}

/** A finished operation's stored answer: what `perform` answered, as JSON text. */
export type StoredResult =
  | { status: 201; json: JsonText<PurchaseView>; location: string }
  | { status: 200; json: JsonText<SubscriptionWire | ConsumptionView>; location: string | null };

/**
 * The status endpoint's answer for an operation, as the CaaS spec has it: still pending, its
 * stored result, or (failed) its stored problem+json, which the caller renders as the error.
 */
export async function operationStatus(
  env: Env,
  opRef: string,
  partnerId: string | null,
): Promise<
  | { state: "pending"; operation: OperationView }
  | { state: "succeeded"; result: StoredResult }
  | { state: "failed"; problem: string }
> {
  const op = await findOperation(env, opRef, partnerId);
  if (!op) throw new AppError("not_found", `operation ${opRef} does not exist`);
  if (op.status === "queued" || op.status === "running") {
    return { state: "pending", operation: operationView(op) };
  }
  if (op.status === "failed") return { state: "failed", problem: op.resultBody ?? "{}" };
  // Written by runOperation from perform's result, whose status tells its body's type.
  const json = (op.resultBody ?? "null") as JsonText<never>;
  const location = op.resultLocation;
  return {
    state: "succeeded",
    result:
      op.resultStatus === 201 && location !== null
        ? { status: 201, json, location }
        : { status: 200, json, location },
  };
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
      {
        status: "succeeded",
        resultStatus: result.status,
        resultBody: JSON.stringify(result.body),
        resultLocation: result.location,
      },
      new Date(),
    );
  } catch (error) {
    if (!(error instanceof AppError) || error.status >= 500) throw error;
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
    console.error("undoing a purchase given up half-way failed", payload.kind, error);
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

/** An operation out of attempts: what it did half-way is undone, and it fails as a 500. */
export async function giveUpOperation(env: Env, opRef: string): Promise<void> {
  const op = await findOperation(env, opRef, null);
  if (op) await undoHalfDone(env, op.payload as unknown as OperationPayload);
  await failOperation(env, opRef, new AppError("internal", "the operation could not be completed"));
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
    if (again.length > 0) await env.OPERATIONS.sendBatch(again);
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
  const rendered = problemResponse(error, operationLocation(opRef));
  await finishOperation(
    env,
    opRef,
    { status: "failed", resultStatus: error.status, resultBody: await rendered.text(), resultLocation: null },
    new Date(),
  );
}
