import * as v from "valibot";
import { Integer } from "./common";

/**
 * Problem details (RFC 9457), the error bodies of /v1 and /api as http/problem.ts renders them.
 * The quota API's cloudFault bodies are in quota.ts.
 */

export const FieldError = v.object({
  point: v.pipe(v.string(), v.description("A JSON Pointer (RFC 6901) into the request part at fault.")),
  message: v.string(),
});

const problemEntries = {
  type: v.pipe(
    v.string(),
    v.url(),
    v.description("`https://stratus.dev/problems/<kind>`, e.g. `not-found`, `quota-exceeded`."),
  ),
  title: v.string(),
  status: Integer,
  detail: v.string(),
  instance: v.optional(v.pipe(v.string(), v.description("The request's path."))),
  errors: v.optional(v.pipe(v.array(FieldError), v.description("Each field at fault."))),
  request_id: v.optional(v.pipe(v.string(), v.description("The request's id, as in `X-Request-Id`."))),
};

/** Open: a problem type may add members (RFC 9457 §3.2), as the two below do. */
export const Problem = v.looseObject(problemEntries);

export const QUOTA_EXCEEDED = "https://stratus.dev/problems/quota-exceeded";

/** Its `type` a constant, so a client's generated types can tell a quota refusal by it. */
export const QuotaExceededProblem = v.looseObject({
  ...problemEntries,
  type: v.literal(QUOTA_EXCEEDED),
  resource: v.pipe(v.string(), v.description("The product asked for.")),
  quota_resource: v.pipe(v.string(), v.description("The quota resource it holds.")),
  customer: v.pipe(v.string(), v.uuid()),
  limit: Integer,
  usage: Integer,
  requested: Integer,
});

export const RateLimitedProblem = v.looseObject({
  ...problemEntries,
  "violated-policies": v.pipe(
    v.array(v.string()),
    v.description("The rate-limit policy broken (draft-ietf-httpapi-ratelimit-headers)."),
  ),
});
