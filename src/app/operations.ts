import {
  createOperation,
  findOperation,
  finishOperation,
  startOperation,
  waitingPurchases,
} from "../db/operations";
import type { PlannedSubscription, PurchaseObject } from "../domain/purchase";
import { money, type SubscriptionRecord } from "../domain/subscriptions";
import type { Env } from "../env";
import { AppError } from "../http/errors";
import { problemResponse } from "../http/problem";
import { orderView } from "../http/views";
import { subscriptionObject } from "../objects/subscription-object";
import { extend } from "./extend";
import { present, visibleRecord } from "./reads";
import { abandon, buy, type PurchaseIds, plan, unwrap } from "./subscriptions";

/**
 * The work behind every write of the subscriptions API, as data. A request runs it at once, or
 * (with `Prefer: respond-async`) stores it as an operation that the operations queue runs. The
 * payload fixes every choice made when the request was accepted (the time, the ids to create,
 * the value a toggle sets), so running it again after a crash or a redelivery finds what the
 * first run did instead of doing it twice.
 */

type StoredObject = Omit<PurchaseObject, "start_time" | "end_time"> & {
  start_time?: string;
  end_time?: string;
};

export type OperationPayload =
  | { kind: "purchase"; partnerId: string; at: string; objects: StoredObject[]; ids: PurchaseIds }
  | {
      kind: "update";
      partnerId: string;
      at: string;
      subscription: string;
      amount?: number;
      autoRenew?: boolean;
    }
  | {
      kind: "extend";
      partnerId: string;
      at: string;
      subscription: string;
      period?: string;
      endTime?: string;
      ids: { subscription: string; order: string };
    }
  | { kind: "auto_renew"; partnerId: string; at: string; subscription: string; value: boolean }
  | { kind: "run"; partnerId: string; at: string; subscription: string; action: "start" | "stop" }
  | { kind: "cancel"; partnerId: string; at: string; subscription: string };

export interface PerformContext {
  /** The operation running the work, if it runs as one. */
  opRef?: string;
  /** A purchase's plan, already made by the request for this payload. */
  planned?: PlannedSubscription[];
}

export interface OperationMessage {
  opRef: string;
}

export interface OperationResult {
  status: number;
  body: unknown;
  location: string | null;
}

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

async function one(env: Env, record: SubscriptionRecord, at: Date, status = 200): Promise<OperationResult> {
  return { status, body: await present(env, record, at), location: location(record.id) };
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
    const objects = await Promise.all(bought.subscriptions.map((r) => present(env, r, at)));
    const first = bought.subscriptions[0];
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
      location: first ? location(first.id) : null,
    };
  }
  // The request already found the subscription within the partner's scope (the payload's partner
  // is the record's); the object answers 404 itself should it be gone.
  const object = subscriptionObject(env, payload.subscription);
  switch (payload.kind) {
    case "update": {
      let record: SubscriptionRecord | null = null;
      if (payload.amount !== undefined) record = unwrap(await object.changeAmount(payload.amount, at));
      if (payload.autoRenew !== undefined) record = unwrap(await object.setAutoRenew(payload.autoRenew));
      return one(env, record ?? (await visibleRecord(env, payload.partnerId, payload.subscription)), at);
    }
    case "extend": {
      const input = {
        ...(payload.period !== undefined ? { period: payload.period } : {}),
        ...(payload.endTime !== undefined ? { end_time: new Date(payload.endTime) } : {}),
      };
      return one(env, await extend(env, payload.partnerId, payload.subscription, input, payload.ids, at), at);
    }
    case "auto_renew":
      return one(env, unwrap(await object.setAutoRenew(payload.value)), at);
    case "run":
      return one(env, unwrap(await object.run(payload.action, at)), at);
    case "cancel":
      return one(env, unwrap(await object.cancel(at)), at);
  }
}

const RETRY_AFTER_SECONDS = 1;

export function prefersAsync(request: Request): boolean {
  const prefer = request.headers.get("prefer") ?? "";
  return prefer.split(/[,;]/).some((token) => token.trim().toLowerCase() === "respond-async");
}

export const operationLocation = (opRef: string) => `/v1/operations/${opRef}`;

/**
 * Answers a write: the result now, or 202 and an operation to poll when the client asks for it
 * or the work cannot finish within the request (`mustWait`: a vendor has to provision first).
 */
export async function respond(
  env: Env,
  request: Request,
  payload: OperationPayload,
  options: { mustWait?: boolean; planned?: PlannedSubscription[] } = {},
): Promise<Response> {
  if (!options.mustWait && !prefersAsync(request)) {
    let result: OperationResult | null;
    try {
      result = await perform(env, payload, options.planned ? { planned: options.planned } : {});
    } catch (error) {
      // Nothing runs this payload again: what it bought half-way is undone before the 5xx.
      if (!(error instanceof AppError) || error.status >= 500) await undoHalfDone(env, payload);
      throw error;
    }
    if (!result) throw new AppError("internal", "work that waits on a vendor must run as an operation");
    return Response.json(result.body, {
      status: result.status,
      ...(result.location ? { headers: { location: result.location } } : {}),
    });
  }
  const opRef = `op_${crypto.randomUUID().replaceAll("-", "")}`;
  const op = await createOperation(env, {
    opRef,
    partnerId: payload.partnerId,
    kind: payload.kind,
    payload,
    now: new Date(),
  });
  await env.OPERATIONS.send({ opRef });
  return Response.json(operationView(op), {
    status: 202,
    headers: {
      location: operationLocation(opRef),
      "retry-after": String(RETRY_AFTER_SECONDS),
      "preference-applied": "respond-async",
    },
  });
}

export function operationView(op: {
  opRef: string;
  kind: string;
  status: string;
  createdAt: string;
  updatedAt: string;
  resultStatus: number | null;
  resultLocation: string | null;
}) {
  return {
    opRef: op.opRef,
    kind: op.kind,
    status: op.status,
    created_at: op.createdAt,
    updated_at: op.updatedAt,
    result_status: op.resultStatus,
    result_location: op.resultLocation,
  };
}

/** The status endpoint's answer for an operation, as the CaaS spec has it. */
export async function operationStatus(env: Env, opRef: string, partnerId: string | null): Promise<Response> {
  const op = await findOperation(env, opRef, partnerId);
  if (!op) throw new AppError("not_found", `operation ${opRef} does not exist`);
  if (op.status === "queued" || op.status === "running") {
    return Response.json(operationView(op), {
      status: 202,
      headers: { "retry-after": String(RETRY_AFTER_SECONDS), location: operationLocation(opRef) },
    });
  }
  const headers: Record<string, string> = {
    "content-type": op.status === "failed" ? "application/problem+json" : "application/json",
  };
  if (op.resultLocation) headers.location = op.resultLocation;
  return new Response(op.resultBody, { status: op.resultStatus ?? 500, headers });
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
    const result = await perform(env, op.payload as unknown as OperationPayload, { opRef });
    if (!result) return;
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
