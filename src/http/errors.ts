/**
 * The one error type the application throws. Each API family renders it in its own dialect
 * (problem+json for /v1, cloudFault for /account/v1.0), so domain and application code never
 * decide wire formats.
 */

export type ErrorKind =
  | "bad_request"
  | "unauthorized"
  | "forbidden"
  | "not_found"
  | "method_not_allowed"
  | "conflict"
  | "precondition_failed"
  | "over_limit"
  | "payload_too_large"
  | "unsupported_media_type"
  | "unprocessable"
  | "failed_dependency"
  | "too_many_requests"
  | "internal"
  | "unavailable";

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

/** A field-level error: `point` is a JSON Pointer (RFC 6901) into the request. */
export interface FieldError {
  point: string;
  message: string;
}

/**
 * The rate-limit policy a `too_many_requests` error broke: each family's renderer turns it into
 * `Retry-After` and the RateLimit-Policy / RateLimit headers (draft-ietf-httpapi-ratelimit-headers).
 */
export interface RateLimited {
  /** The policy's name, e.g. `standard` or `auth-failures`. */
  policy: string;
  /** Requests allowed per window. */
  quota: number;
  /** The window, in seconds. */
  window: number;
  /** Seconds until the client may try again. */
  retryAfter: number;
}

/** `Retry-After`, `RateLimit-Policy` and `RateLimit` of a 429, the same in every family. */
export function rateLimitHeaders(r: RateLimited): Record<string, string> {
  const name = `"${r.policy}"`;
  return {
    "retry-after": String(r.retryAfter),
    "ratelimit-policy": `${name};q=${r.quota};w=${r.window}`,
    ratelimit: `${name};r=0;t=${r.retryAfter}`,
  };
}

export class AppError extends Error {
  constructor(
    readonly kind: ErrorKind,
    message: string,
    readonly options: {
      fields?: FieldError[];
      data?: Record<string, unknown>;
      rateLimited?: RateLimited;
    } = {},
  ) {
    super(message);
    this.name = "AppError";
  }

  get status(): number {
    return STATUS_OF[this.kind];
  }
}

export const badRequest = (message: string, fields?: FieldError[]) =>
  new AppError("bad_request", message, fields ? { fields } : {});
export const notFound = (message: string, data?: Record<string, unknown>) =>
  new AppError("not_found", message, data ? { data } : {});

/** An AppError as plain data, to cross a Durable Object RPC boundary (class identity does not). */
export interface ErrorWire {
  kind: ErrorKind;
  message: string;
  fields?: FieldError[];
  data?: Record<string, unknown>;
}

export const toErrorWire = (e: AppError): ErrorWire => ({ kind: e.kind, message: e.message, ...e.options });

export const fromErrorWire = (w: ErrorWire): AppError =>
  new AppError(w.kind, w.message, {
    ...(w.fields ? { fields: w.fields } : {}),
    ...(w.data ? { data: w.data } : {}),
  });

export const refused = (r: { kind: "bad_request" | "conflict"; message: string; point: string }): AppError =>
  new AppError(r.kind, r.message, { fields: [{ point: r.point, message: r.message }] });
