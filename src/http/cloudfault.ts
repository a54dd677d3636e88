import type * as v from "valibot";
import type { AppError, ErrorKind } from "../domain/errors";
import { asciiJson } from "../domain/json";
import type { CloudFault } from "../schemas/quota";
import { rateLimitHeaders, statusOf } from "./errors";

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
  method_not_allowed: "notAllowed",
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
export function cloudFault(error: AppError): v.InferOutput<typeof CloudFault> {
  // Astakos's 413 is a quota refusal: a body too large is a bad request in this dialect.
  const status = error.kind === "payload_too_large" ? 400 : statusOf(error);
  const fault: Fault = { message: error.message, code: status };
  if (error.options.data) fault.data = error.options.data;
  if (error.options.rateLimited) fault.retryAfter = String(error.options.rateLimited.retryAfter);
  // FAULTS and the codes above make each kind's variant as schemas/quota.ts states it; the
  // contract checks of the suite hold every rendered fault to those schemas.
  return { [FAULTS[error.kind]]: fault } as unknown as v.InferOutput<typeof CloudFault>;
}

export function cloudFaultResponse(error: AppError): Response {
  const body = cloudFault(error);
  const code = (Object.values(body)[0] as Fault | undefined)?.code ?? statusOf(error);
  const limited = error.options.rateLimited;
  // In ASCII only, as every answer of the dialect (domain/json.ts): a message may echo the input.
  return new Response(asciiJson(body), {
    status: code,
    headers: { "content-type": "application/json", ...(limited ? rateLimitHeaders(limited) : {}) },
  });
}
