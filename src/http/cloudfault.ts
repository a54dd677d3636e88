import { type AppError, type ErrorKind, rateLimitHeaders } from "./errors";

/**
 * cloudFault bodies, the error format of the quota API (/account/v1.0): `{"<fault>": {message, code, data?}}`.
 *
 * Astakos defines no rate-limit fault (Synnefo's `OverLimit` is its 413 for quota); a rate limit
 * answers as OpenStack Nova's `RateLimitFault` does: HTTP 429 with
 * `{"overLimit": {"message", "code": 429, "retryAfter": "<seconds>"}}`. The key is the one
 * OpenStack clients know; the code, 429 instead of the quota's 413, tells the two apart.
 */

type Fault = { message: string; code: number; data?: unknown; retryAfter?: string };

const FAULTS: Record<ErrorKind, string> = {
  bad_request: "badRequest",
  unauthorized: "unauthorized",
  forbidden: "forbidden",
  not_found: "itemNotFound",
  method_not_allowed: "badRequest",
  conflict: "conflict",
  precondition_failed: "conflict",
  over_limit: "overLimit",
  payload_too_large: "badRequest",
  unsupported_media_type: "badMediaType",
  unprocessable: "badRequest",
  failed_dependency: "badRequest",
  too_many_requests: "overLimit",
  internal: "internalServerError",
  unavailable: "serviceUnavailable",
};

/** The fault object alone, as resolve-many embeds it in its `failed` pairs. */
export function cloudFault(error: AppError): Record<string, Fault> {
  const status =
    error.kind === "method_not_allowed" || error.kind === "payload_too_large" ? 400 : error.status;
  const fault: Fault = { message: error.message, code: status };
  if (error.options.data) fault.data = error.options.data;
  if (error.options.rateLimited) fault.retryAfter = String(error.options.rateLimited.retryAfter);
  return { [FAULTS[error.kind]]: fault };
}

export function cloudFaultResponse(error: AppError): Response {
  const body = cloudFault(error);
  const code = Object.values(body)[0]?.code ?? error.status;
  const limited = error.options.rateLimited;
  return Response.json(body, { status: code, ...(limited ? { headers: rateLimitHeaders(limited) } : {}) });
}
