import { type AppError, type ErrorKind, rateLimitHeaders } from "./errors";

/** RFC 9457 problem details, the error format of the partner API (/v1). */

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
const statusOf = (error: AppError) => (error.kind === "over_limit" ? 409 : error.status);
const typeOf = (error: AppError) =>
  error.kind === "over_limit" ? "quota-exceeded" : error.kind.replaceAll("_", "-");

/**
 * The problem document of `error`. `requestId` is the `X-Request-Id` of the request answered
 * (absent only for an operation's stored failure, which its poll adds: routes/operations.ts).
 */
export function problemResponse(error: AppError, instance?: string, requestId?: string): Response {
  const status = statusOf(error);
  const body: Record<string, unknown> = {
    type: `https://stratus.dev/problems/${typeOf(error)}`,
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
