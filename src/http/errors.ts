import type { AppError, ErrorKind, RateLimited } from "../domain/errors";

/** The HTTP side of the domain's error kinds (src/domain/errors.ts): their statuses and headers. */

export const STATUS_OF: Record<ErrorKind, number> = {
  bad_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  method_not_allowed: 405,
  conflict: 409,
  precondition_failed: 412,
  over_limit: 413,
  payload_too_large: 413,
  unsupported_media_type: 415,
  unprocessable: 422,
  failed_dependency: 424,
  too_many_requests: 429,
  internal: 500,
  unavailable: 503,
};

export const statusOf = (error: AppError): number => STATUS_OF[error.kind];

/** `Retry-After`, `RateLimit-Policy` and `RateLimit` of a 429, the same in every family. */
export function rateLimitHeaders(r: RateLimited): Record<string, string> {
  const name = `"${r.policy}"`;
  return {
    "retry-after": String(r.retryAfter),
    "ratelimit-policy": `${name};q=${r.quota};w=${r.window}`,
    ratelimit: `${name};r=0;t=${r.retryAfter}`,
  };
}
