import { type Answer, type OperationView, operationLocation, type ResultOf } from "../app/operations";
import { OperationOut } from "../schemas/operations";
import * as examples from "./examples";
import type { ResponseSpec } from "./reply";

/**
 * The replies of the subscriptions API's writes (app/operations.ts `respond`): the result now,
 * or 202 with the operation that runs it.
 */

/** Seconds a client waits before polling an operation. */
const RETRY_AFTER_SECONDS = "1";

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
      description: "`respond-async`: the request's preference was honoured.",
      required: true,
      schema: { type: "string", enum: ["respond-async"] },
    },
  },
} as const satisfies ResponseSpec;

/** The 202 reply of an operation still running (also the status endpoint's while it runs). */
export const acceptedReply = (operation: OperationView) =>
  ({
    status: 202,
    body: operation,
    headers: {
      Location: operationLocation(operation.opRef),
      "Retry-After": RETRY_AFTER_SECONDS,
      "Preference-Applied": "respond-async",
    },
  }) as const;

type Done = ResultOf[keyof ResultOf];

/** A finished result's reply: with its `Location` when it has one. */
type DoneReply<R extends Done> = R extends { location: string }
  ? { status: R["status"]; body: R["body"]; headers: { Location: string } }
  : { status: R["status"]; body: R["body"] };

function doneReply(result: Done) {
  return result.location === null
    ? { status: result.status, body: result.body }
    : { status: result.status, body: result.body, headers: { Location: result.location } };
}

export function operationReply<K extends keyof ResultOf>(
  answer: Answer<K>,
): ReturnType<typeof acceptedReply> | DoneReply<ResultOf[K]> {
  if ("operation" in answer) return acceptedReply(answer.operation);
  // doneReply keeps each result's status, body and location together, as DoneReply states them.
  return doneReply(answer) as DoneReply<ResultOf[K]>;
}
