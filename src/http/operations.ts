import { type Intent, journalOf, type OperationPayload } from "../app/intents";
import { enqueueOperation, newOpRef, outcomeOf, performNow } from "../app/operations";
import type { OperationResult } from "../app/perform";
import { findOperation, type Operation } from "../db/operations";
import { AppError } from "../domain/errors";
import { entityTag } from "../domain/etag";
import type { JsonText } from "../domain/json";
import type { PlannedSubscription } from "../domain/purchase";
import type { Scope } from "../domain/scope";
import { money, type SubscriptionWire } from "../domain/subscriptions";
import { OperationOut } from "../schemas/operations";
import * as examples from "./examples";
import { problemError, problemStatus } from "./problem";
import type { ResponseSpec } from "./reply";
import { orderView } from "./views";

/**
 * Writes of the subscriptions API on the wire: answered at once, or 202 and an operation to poll
 * (CaaS OpRef), whose status endpoint answers what the write would have. The app layer stores
 * what the work did as data; the replies here are typed against the routes' declared responses.
 */

/** Seconds a client waits before polling an operation it has just been given. */
const RETRY_AFTER_SECONDS = "1";

/**
 * Seconds to wait before polling an operation still under way: a tenth of its age, between 1 and
 * 60. Most finish within a second; one waiting days for a vendor is then polled once a minute,
 * not once a second.
 */
export function retryAfterSeconds(createdAt: string, now: number): string {
  const age = (now - Date.parse(createdAt)) / 1000;
  return String(Math.min(60, Math.max(1, Math.floor(age / 10))));
}

type Kind = OperationPayload["kind"];
type PayloadOf<K extends Kind> = Extract<OperationPayload, { kind: K }>;

/**
 * Whether `Prefer` names `respond-async` (RFC 7240 §2): among its comma-separated preferences, a
 * name before any `=` value or `;` parameters, in any case. A value (`respond-async=""`) does not
 * change it: the preference takes none, and an empty one is no value at all.
 */
export function prefersAsync(request: Request): boolean {
  const prefer = request.headers.get("prefer") ?? "";
  return prefer
    .split(",")
    .some((preference) => preference.split(/[;=]/, 1)[0]?.trim().toLowerCase() === "respond-async");
}

export const operationLocation = (opRef: string) => `/v1/operations/${opRef}`;

const subscriptionLocation = (id: string) => `/v1/subscriptions/${id}/`;

type PurchaseBody = {
  objects: SubscriptionWire[];
  meta: { total_price: string; currency: string; orders: ReturnType<typeof orderView>[] };
};
type ConsumptionBody = { objects: SubscriptionWire[]; meta: { unallocated: number } };

type PurchaseReply = { status: 201; body: PurchaseBody; headers: { Location: string } };
type ConsumptionReply = { status: 200; body: ConsumptionBody };
type SubscriptionReply = {
  status: 200;
  body: SubscriptionWire;
  headers: { Location: string; ETag?: string };
};
type DoneReply<K extends Kind> = K extends "purchase"
  ? PurchaseReply
  : K extends "consume"
    ? ConsumptionReply
    : SubscriptionReply;

/** A write's result as the request, or later its operation, answers it. */
function replyOf(result: OperationResult): PurchaseReply | ConsumptionReply | SubscriptionReply {
  switch (result.kind) {
    case "purchase": {
      const first = result.objects[0];
      if (!first) throw new AppError("internal", "a purchase bought nothing");
      return {
        status: 201,
        body: {
          objects: result.objects,
          meta: {
            total_price: money(result.totalMinor, result.currency),
            currency: result.currency,
            orders: result.orders.map(orderView),
          },
        },
        headers: { Location: subscriptionLocation(first.id) },
      };
    }
    case "consume":
      return { status: 200, body: { objects: result.objects, meta: { unallocated: result.unallocated } } };
    case "subscription": {
      const Location = subscriptionLocation(result.object.id);
      // The request's own target (changed or cancelled) answers its new ETag, for the next If-Match.
      if (!result.tagged) return { status: 200, body: result.object, headers: { Location } };
      const ETag = entityTag(JSON.stringify(result.object));
      return { status: 200, body: result.object, headers: { Location, ETag } };
    }
  }
}

export interface OperationView {
  opRef: string;
  kind: Kind;
  status: Operation["status"];
  created_at: string;
  updated_at: string;
  result_status: number | null;
  result_location: string | null;
}

/** A finished operation's status and location; null while it is queued or running. */
function finalStatus(op: Operation): { status: number; location: string | null } | null {
  if (op.status === "queued" || op.status === "running") return null;
  const outcome = outcomeOf(op);
  if (outcome?.ok === true) {
    const reply = replyOf(outcome.result);
    return { status: reply.status, location: "headers" in reply ? reply.headers.Location : null };
  }
  if (outcome?.ok === false) return { status: problemStatus(outcome.error), location: null };
  // A row finished before results were stored as data keeps its rendered answer.
  return { status: op.resultStatus ?? 500, location: op.resultLocation };
}

export function operationView(op: Operation): OperationView {
  const final = finalStatus(op);
  return {
    opRef: op.opRef,
    // Stored from an OperationPayload's kind (enqueueOperation).
    kind: op.kind as Kind,
    status: op.status,
    created_at: op.createdAt,
    updated_at: op.updatedAt,
    result_status: final?.status ?? null,
    result_location: final?.location ?? null,
  };
}

/** The 202 of a write run as an operation. */
export const ACCEPTED = {
  description:
    "Accepted: the work runs as an operation; poll `Location` until it answers what this request would have.",
  schema: OperationOut,
  example: examples.operation,
  headers: {
    Location: { description: "The operation to poll (`/v1/operations/{opRef}`).", required: true },
    "Retry-After": {
      description: "Seconds to wait before polling.",
      required: true,
      schema: { type: "integer", minimum: 0 },
    },
    "Preference-Applied": {
      description:
        "`respond-async`, when the request sent `Prefer: respond-async` (RFC 7240: only a preference that was sent is said to be applied). A purchase that must wait for its vendor answers 202 without it.",
      schema: { type: "string", enum: ["respond-async"] },
    },
  },
} as const satisfies ResponseSpec;

const acceptedReply = (operation: OperationView, preferred: boolean) =>
  ({
    status: 202,
    body: operation,
    headers: {
      Location: operationLocation(operation.opRef),
      "Retry-After": RETRY_AFTER_SECONDS,
      ...(preferred ? { "Preference-Applied": "respond-async" as const } : {}),
    },
  }) as const;

/** What a write answers: its result now, or 202 and the operation that runs it. */
export type WriteReply<K extends Kind> = DoneReply<K> | ReturnType<typeof acceptedReply>;

/** Stores the work as operation `opRef` (once) and queues it: 202 and where to poll. */
async function accepted(env: Env, request: Request, payload: OperationPayload, opRef: string) {
  return acceptedReply(operationView(await enqueueOperation(env, payload, opRef)), prefersAsync(request));
}

async function doneNow<K extends Kind>(
  env: Env,
  payload: PayloadOf<K>,
  options: { resumable: boolean; fresh: boolean; planned?: PlannedSubscription[] | undefined },
): Promise<DoneReply<K>> {
  // performNow answers a purchase with a purchase, a report with a consumption, and any other
  // kind with the subscription it changed: the kind of the result follows the payload's.
  return replyOf(await performNow(env, payload, options)) as DoneReply<K>;
}

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
): Promise<WriteReply<K>> {
  const journal = journalOf(request);
  const opRef = options.mustWait || prefersAsync(request) ? newOpRef() : null;
  await journal?.record({ payload, opRef });
  if (opRef) return accepted(env, request, payload, opRef);
  return doneNow(env, payload, { resumable: journal !== undefined, fresh: true, planned: options.planned });
}

/**
 * Resumes what a request that died had committed to: the same payload, with the same ids, so
 * what the first attempt did is found and finished, never done twice.
 */
export async function resume(env: Env, request: Request, intent: Intent): Promise<WriteReply<Kind>> {
  if (intent.opRef) return accepted(env, request, intent.payload, intent.opRef);
  return doneNow(env, intent.payload, { resumable: true, fresh: false });
}

/**
 * The status endpoint's answer for an operation, as the CaaS spec has it: 202 while it runs, the
 * write's own answer once it succeeded, and its error (thrown, so it renders as a problem) once it
 * failed. `kinds`: the only kinds of operation the caller may read (others do not exist for it).
 */
export async function operationStatus(
  env: Env,
  opRef: string,
  scope: Scope,
  kinds: readonly string[] | null = null,
) {
  const op = await findOperation(env, opRef, scope);
  if (!op || (kinds !== null && !kinds.includes(op.kind)))
    throw new AppError("not_found", `operation ${opRef} does not exist`);
  if (op.status === "queued" || op.status === "running") {
    return {
      status: 202,
      body: operationView(op),
      headers: {
        Location: operationLocation(opRef),
        "Retry-After": retryAfterSeconds(op.createdAt, Date.now()),
      },
    } as const;
  }
  const outcome = outcomeOf(op);
  if (outcome?.ok === true) return replyOf(outcome.result);
  if (outcome?.ok === false) throw outcome.error;
  // A row finished before results were stored as data: its answer was stored rendered.
  if (op.status === "failed") throw problemError(op.resultBody ?? "{}");
  const location = op.resultLocation;
  if (op.resultStatus === 201 && location !== null) {
    return {
      status: 201,
      json: op.resultBody as JsonText<PurchaseBody>,
      headers: { Location: location },
    } as const;
  }
  return {
    status: 200,
    json: op.resultBody as JsonText<SubscriptionWire | ConsumptionBody>,
    headers: location === null ? {} : { Location: location },
  } as const;
}
