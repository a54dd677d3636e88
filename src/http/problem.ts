import { AppError, type ErrorKind, type FieldError } from "../domain/errors";
import { QUOTA_EXCEEDED } from "../schemas/errors";
import { rateLimitHeaders, statusOf } from "./errors";

/** RFC 9457 problem details, the error format of the partner API (/v1). */

const PROBLEM_TYPE_BASE = "https://stratus.dev/problems/";

/** A quota refusal has a type of its own; every other kind is named after itself. */
const typeOf = (kind: ErrorKind) =>
  kind === "over_limit" ? QUOTA_EXCEEDED : `${PROBLEM_TYPE_BASE}${kind.replaceAll("_", "-")}`;

const TITLES: Record<ErrorKind, string> = {
  bad_request: "Bad Request",
  unauthorized: "Unauthorized",
  forbidden: "Forbidden",
  not_found: "Not Found",
  method_not_allowed: "Method Not Allowed",
  conflict: "Conflict",
  precondition_failed: "Precondition Failed",
  over_limit: "Quota Exceeded",
  payload_too_large: "Payload Too Large",
  unsupported_media_type: "Unsupported Media Type",
  unprocessable: "Unprocessable Content",
  failed_dependency: "Failed Dependency",
  too_many_requests: "Too Many Requests",
  internal: "Internal Server Error",
  unavailable: "Service Unavailable",
};

/**
 * A quota refusal is a conflict with the state of the customer's holdings, not a request too
 * large (HTTP's 413): the partner API answers it 409 with its own problem type. The quota API
 * keeps Astakos's 413 `overLimit` (cloudfault.ts).
 */
export const problemStatus = (error: AppError) => (error.kind === "over_limit" ? 409 : statusOf(error));

/**
 * The problem document of `error`. `requestId` is the `X-Request-Id` of the request answered
 * (absent only for an operation's stored failure, which its poll adds: routes/operations.ts).
 */
export function problemResponse(error: AppError, instance?: string, requestId?: string): Response {
  const status = problemStatus(error);
  const body: Record<string, unknown> = {
    type: typeOf(error.kind),
    title: TITLES[error.kind],
    status,
    detail: error.message,
  };
  if (instance) body.instance = instance;
  if (error.options.fields) body.errors = error.options.fields;
  if (error.options.data) Object.assign(body, error.options.data);
  const headers: Record<string, string> = { "content-type": "application/problem+json" };
  // Work another request is in the middle of: worth retrying in a moment.
  if (error.kind === "unavailable") headers["retry-after"] = "1";
  const limited = error.options.rateLimited;
  if (limited) {
    // The extension member the RateLimit draft defines for its quota-exceeded problem type.
    body["violated-policies"] = [limited.policy];
    Object.assign(headers, rateLimitHeaders(limited));
  }
  if (requestId !== undefined) body.request_id = requestId;
  return new Response(JSON.stringify(body), { status, headers });
}

const KIND_OF_TYPE = new Map((Object.keys(TITLES) as ErrorKind[]).map((kind) => [typeOf(kind), kind]));

/** The error a stored problem+json body (a failed operation's answer) tells, to be answered again. */
export function problemError(text: string): AppError {
  const {
    type,
    title: _,
    status,
    detail,
    instance: __,
    errors,
    request_id: ___,
    ...data
  } = JSON.parse(text) as {
    type?: string;
    title?: string;
    status?: number;
    detail?: string;
    instance?: string;
    errors?: FieldError[];
    request_id?: string;
    [member: string]: unknown;
  };
  const kind = KIND_OF_TYPE.get(type ?? "") ?? "internal";
  return new AppError(kind, detail ?? "the operation failed", {
    ...(errors ? { fields: errors } : {}),
    ...(Object.keys(data).length > 0 ? { data } : {}),
  });
}
