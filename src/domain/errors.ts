/**
 * The one error type the application throws: a kind, a message and what a client needs to act on
 * it. Each API family renders it in its own dialect (problem+json for /v1, cloudFault for
 * /account/v1.0) in `src/http`, which alone knows HTTP statuses; nothing below decides wire formats.
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
}

/**
 * The kinds that are the server's failure rather than an answer about the request (the 5xx of
 * every family): work that failed so may be retried, and is never kept as a final answer.
 */
const SERVER_FAULTS: ReadonlySet<ErrorKind> = new Set(["internal", "unavailable"]);

/** Whether `error` is a final answer about the request (a 4xx): an AppError, and not a server fault. */
export const isFinalAnswer = (error: unknown): error is AppError =>
  error instanceof AppError && !SERVER_FAULTS.has(error.kind);

/**
 * What a client is shown of a failure that is not a final answer: an `unavailable` as it is (its
 * message says what to do: retry shortly), anything else as a bare internal error, its detail
 * (an invariant's message, an exception's) for the log alone.
 */
export const shownFault = (error: unknown): AppError =>
  error instanceof AppError && error.kind === "unavailable"
    ? error
    : new AppError("internal", "internal error");

/** A 400's detail: the first field error, where it is, and how many more there are. */
export function describeFieldErrors(errors: readonly FieldError[], what: string): string {
  const first = errors[0];
  if (!first) return `invalid ${what}`;
  const where = first.point === "" ? what : first.point;
  const more = errors.length > 1 ? ` (and ${errors.length - 1} more)` : "";
  return `${where}: ${first.message}${more}`;
}

export const badRequest = (message: string, fields?: FieldError[]) =>
  new AppError("bad_request", message, fields ? { fields } : {});
export const notFound = (message: string, data?: Record<string, unknown>) =>
  new AppError("not_found", message, data ? { data } : {});

export const refused = (r: { kind: "bad_request" | "conflict"; message: string; point: string }): AppError =>
  new AppError(r.kind, r.message, { fields: [{ point: r.point, message: r.message }] });

/** An AppError as plain data, to cross a Durable Object RPC boundary (class identity does not) or be stored. */
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
