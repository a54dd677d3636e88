import type { AppError, ErrorKind } from "../domain/errors";
import { rateLimitHeaders, statusOf } from "./errors";

/** RFC 9457 problem details, the error format of the partner API (/v1). */

const TITLES: Record<ErrorKind, string> = {
  bad_request: "Bad Request",
  unauthorized: "Unauthorized",
  forbidden: "Forbidden",
  not_found: "Not Found",
  method_not_allowed: "Method Not Allowed",
  conflict: "Conflict",
  over_limit: "Quota Exceeded",
  payload_too_large: "Payload Too Large",
  unsupported_media_type: "Unsupported Media Type",
  unprocessable: "Unprocessable Content",
  failed_dependency: "Failed Dependency",
  too_many_requests: "Too Many Requests",
  internal: "Internal Server Error",
  unavailable: "Service Unavailable",
};

export function problemResponse(error: AppError, instance?: string): Response {
  const body: Record<string, unknown> = {
    type: `https://stratus.dev/problems/${error.kind.replaceAll("_", "-")}`,
    title: TITLES[error.kind],
    status: statusOf(error),
    detail: error.message,
  };
  if (instance) body.instance = instance;
  if (error.options.fields) body.errors = error.options.fields;
  if (error.options.data) Object.assign(body, error.options.data);
  const headers: Record<string, string> = { "content-type": "application/problem+json" };
  if (error.kind === "unauthorized") headers["www-authenticate"] = 'ApiKey header="X-Api-Key"';
  // Work another request is in the middle of: worth retrying in a moment.
  if (error.kind === "unavailable") headers["retry-after"] = "1";
  const limited = error.options.rateLimited;
  if (limited) {
    // The extension member the RateLimit draft defines for its quota-exceeded problem type.
    body["violated-policies"] = [limited.policy];
    Object.assign(headers, rateLimitHeaders(limited));
  }
  return new Response(JSON.stringify(body), { status: statusOf(error), headers });
}
