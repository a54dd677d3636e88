import { type Intent, journalOf, type OperationPayload } from "../app/intents";
import { enqueueOperation, newOpRef, type OperationResult, outcomeOf, performNow } from "../app/operations";
import { findOperation, type Operation } from "../db/operations";
import { AppError } from "../domain/errors";
import type { PlannedSubscription } from "../domain/purchase";
import { money } from "../domain/subscriptions";
import { statusOf } from "./errors";
import { problemResponse } from "./problem";
import { orderView } from "./views";

/**
 * Writes of the subscriptions API on the wire: answered at once, or 202 and an operation to poll
 * (CaaS OpRef), whose status endpoint answers what the write would have.
 */

const RETRY_AFTER_SECONDS = 1;

export function prefersAsync(request: Request): boolean {
  const prefer = request.headers.get("prefer") ?? "";
  return prefer.split(/[,;]/).some((token) => token.trim().toLowerCase() === "respond-async");
}

export const operationLocation = (opRef: string) => `/v1/operations/${opRef}`;

const subscriptionLocation = (id: string) => `/v1/subscriptions/${id}/`;

/** A write's result as the request, or later its operation, answers it. */
function answerOf(result: OperationResult): { status: number; body: unknown; location: string | null } {
  switch (result.kind) {
    case "purchase": {
      const first = result.objects[0];
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
        location: first ? subscriptionLocation(first.id) : null,
      };
    }
    case "consume":
      return {
        status: 200,
        body: { objects: result.objects, meta: { unallocated: result.unallocated } },
        location: null,
      };
    case "subscription":
      return { status: 200, body: result.object, location: subscriptionLocation(result.object.id) };
  }
}

function resultResponse(result: OperationResult): Response {
  const { status, body, location } = answerOf(result);
  return Response.json(body, { status, ...(location ? { headers: { location } } : {}) });
}

/**
 * A finished operation's answer: its status and location, and the response itself. Null while it
 * is queued or running.
 */
function finalAnswer(
  op: Operation,
): { status: number; location: string | null; response: () => Response } | null {
  if (op.status === "queued" || op.status === "running") return null;
  const outcome = outcomeOf(op);
  if (outcome?.ok === true) {
    const { status, location } = answerOf(outcome.result);
    return { status, location, response: () => resultResponse(outcome.result) };
  }
  if (outcome?.ok === false) {
    return {
      status: statusOf(outcome.error),
      location: null,
      response: () => problemResponse(outcome.error, operationLocation(op.opRef)),
    };
  }
  // A row finished before results were stored as data: its answer was stored rendered.
  const status = op.resultStatus ?? 500;
  const location = op.resultLocation;
  const headers: Record<string, string> = {
    "content-type": op.status === "failed" ? "application/problem+json" : "application/json",
  };
  if (location) headers.location = location;
  return { status, location, response: () => new Response(op.resultBody, { status, headers }) };
}

export function operationView(op: Operation) {
  const answer = finalAnswer(op);
  return {
    opRef: op.opRef,
    kind: op.kind,
    status: op.status,
    created_at: op.createdAt,
    updated_at: op.updatedAt,
    result_status: answer?.status ?? null,
    result_location: answer?.location ?? null,
  };
}

/** Stores the work as operation `opRef` (once) and queues it: 202 and where to poll. */
async function accepted(env: Env, payload: OperationPayload, opRef: string): Promise<Response> {
  const op = await enqueueOperation(env, payload, opRef);
  return Response.json(operationView(op), {
    status: 202,
    headers: {
      location: operationLocation(opRef),
      "retry-after": String(RETRY_AFTER_SECONDS),
      "preference-applied": "respond-async",
    },
  });
}

/**
 * Answers a write: the result now, or 202 and an operation to poll when the client asks for it
 * or the work cannot finish within the request (`mustWait`: a vendor has to provision first).
 * Under an Idempotency-Key the work is recorded with the key before any of it is done.
 */
export async function respond(
  env: Env,
  request: Request,
  payload: OperationPayload,
  options: { mustWait?: boolean; planned?: PlannedSubscription[] } = {},
): Promise<Response> {
  const journal = journalOf(request);
  const opRef = options.mustWait || prefersAsync(request) ? newOpRef() : null;
  await journal?.record({ payload, opRef });
  if (opRef) return accepted(env, payload, opRef);
  return resultResponse(
    await performNow(env, payload, { resumable: journal !== undefined, planned: options.planned }),
  );
}

/**
 * Resumes what a request that died had committed to: the same payload, with the same ids, so
 * what the first attempt did is found and finished, never done twice.
 */
export async function resume(env: Env, intent: Intent): Promise<Response> {
  if (intent.opRef) return accepted(env, intent.payload, intent.opRef);
  return resultResponse(await performNow(env, intent.payload, { resumable: true }));
}

/** The status endpoint's answer for an operation, as the CaaS spec has it. */
export async function operationStatus(env: Env, opRef: string, partnerId: string | null): Promise<Response> {
  const op = await findOperation(env, opRef, partnerId);
  if (!op) throw new AppError("not_found", `operation ${opRef} does not exist`);
  const answer = finalAnswer(op);
  if (answer) return answer.response();
  return Response.json(operationView(op), {
    status: 202,
    headers: { "retry-after": String(RETRY_AFTER_SECONDS), location: operationLocation(opRef) },
  });
}
