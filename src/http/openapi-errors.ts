import type { ErrorKind } from "../domain/errors";
import type { Family } from "./auth";
import { BOOKMARK_HEADER, BOOKMARK_PATTERN } from "./d1-session";
import type { JsonSchema } from "./reply";
import { KEYED_METHODS, type RouteSpec, readsBody } from "./route";

/**
 * The error answers of the document: which statuses each route can answer, derived from what it
 * does (parses input, authenticates, has path parameters, takes a body, runs under an
 * Idempotency-Key) plus what it declares, each as its family renders it (problem.ts, cloudfault.ts).
 */

const schema = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const header = (name: string) => ({ $ref: `#/components/headers/${name}` });

/** Response headers the document names once and refers to. */
export const HEADERS: Record<string, JsonSchema> = {
  "X-Request-Id": {
    description: "The request's id (`cf-ray` when present, else generated; an incoming one is echoed).",
    schema: { type: "string" },
  },
  "Retry-After": {
    description: "Seconds to wait before asking again.",
    schema: { type: "integer", minimum: 0 },
  },
  "WWW-Authenticate": { description: "The credential header the family reads.", schema: { type: "string" } },
  Allow: { description: "The methods the path does take.", schema: { type: "string" } },
  [BOOKMARK_HEADER]: {
    description:
      "The latest D1 bookmark the request saw (or the one it sent, if it read nothing from D1): send it back in `X-D1-Bookmark` to read at least what this answer reflects, from any replica.",
    schema: { type: "string", pattern: BOOKMARK_PATTERN },
  },
};

/** The headers every answer may carry, success or error. */
export const EVERY_ANSWER = {
  "X-Request-Id": header("X-Request-Id"),
  [BOOKMARK_HEADER]: header(BOOKMARK_HEADER),
};

function answer(description: string, media: string, body: JsonSchema, headers: JsonSchema = {}) {
  return {
    description,
    headers: { ...EVERY_ANSWER, ...headers },
    content: { [media]: { schema: body } },
  };
}

/** The headers of every 429, stated in place: a reference cannot add `required`. */
const rateLimited = {
  "Retry-After": { ...HEADERS["Retry-After"], required: true },
  "RateLimit-Policy": {
    description: 'The policy broken (draft-ietf-httpapi-ratelimit-headers), e.g. `"standard";q=600;w=60`.',
    required: true,
    schema: { type: "string" },
  },
  RateLimit: {
    description: 'What is left of it, e.g. `"standard";r=0;t=42`.',
    required: true,
    schema: { type: "string" },
  },
};

const problem = (description: string, body: JsonSchema = schema("Problem"), headers: JsonSchema = {}) =>
  answer(description, "application/problem+json", body, headers);
const quotaProblem = (description: string) =>
  problem(description, { anyOf: [schema("QuotaExceededProblem"), schema("Problem")] });
const fault = (description: string, body: JsonSchema, headers: JsonSchema = {}) =>
  answer(description, "application/json", body, headers);

/** Reusable error answers (`#/components/responses/<name>`), per family. */
export const ERROR_RESPONSES: Record<string, JsonSchema> = {
  BadRequest: problem("Invalid input: `errors` names each field at fault; nothing was done."),
  Unauthorized: problem("Missing or invalid credentials.", schema("Problem"), {
    "WWW-Authenticate": header("WWW-Authenticate"),
  }),
  Forbidden: problem("The credential's role cannot use this endpoint."),
  NotFound: problem("No such resource, or not the caller's."),
  MethodNotAllowed: problem("The path does not take this method.", schema("Problem"), {
    Allow: header("Allow"),
  }),
  Conflict: problem("Conflicts with the resource's state, or with a request under the same Idempotency-Key."),
  ConflictOrQuotaExceeded: quotaProblem(
    "Over quota (`quota-exceeded`: names the resource, limit and usage; nothing was done), or a conflict with the resource's state.",
  ),
  PreconditionFailed: problem("`If-Match` names a version that is no longer current."),
  ContentTooLarge: problem("The request body is larger than 1 MiB."),
  UnsupportedMediaType: problem("The request body is not `application/json`."),
  UnprocessableContent: problem("The Idempotency-Key was used with a different request."),
  FailedDependency: problem("A vendor could not provision; nothing was bought."),
  TooManyRequests: problem(
    "Rate limited: too many requests with this credential, or too many failed authentications from this address, in the current window.",
    schema("RateLimitedProblem"),
    rateLimited,
  ),
  ServerError: problem(
    "The Worker failed (500), or work another request is in the middle of (503: retry after `Retry-After`).",
    schema("Problem"),
    {
      "Retry-After": header("Retry-After"),
    },
  ),
  FaultBadRequest: fault(
    "Invalid input, or a request the dialect refuses (`badRequest`).",
    schema("BadRequestFault"),
  ),
  FaultUnauthorized: fault(
    "Missing or invalid token, or a token of another kind (`unauthorized`).",
    schema("UnauthorizedFault"),
  ),
  FaultNotFound: fault("No such item (`itemNotFound`).", schema("ItemNotFoundFault")),
  FaultNotAllowed: fault(
    "A method this path does not serve (`notAllowed`); `Allow` lists those it does.",
    schema("NotAllowedFault"),
    { Allow: header("Allow") },
  ),
  FaultConflict: fault("Conflicts with the commission's state (`conflict`).", schema("ConflictFault")),
  FaultOverLimit: fault(
    "A limit would be exceeded or a usage fall below zero (`overLimit`, with `data`).",
    schema("OverLimitFault"),
  ),
  FaultBadMediaType: fault(
    "The request body is not `application/json` (`badMediaType`).",
    schema("BadMediaTypeFault"),
  ),
  FaultTooManyRequests: fault(
    "Rate limited (`overLimit` with code 429 and `retryAfter`).",
    schema("RateLimitFault"),
    rateLimited,
  ),
  FaultServerError: fault(
    "The Worker failed (`internalServerError`), or is busy with the same work (`serviceUnavailable`).",
    { anyOf: [schema("InternalServerErrorFault"), schema("ServiceUnavailableFault")] },
  ),
};

/** What a request no route answers gets, by family: the hook of the test suite checks these too. */
export const UNMATCHED: Record<Family, { notFound: string; wrongMethod: [number, string] }> = {
  partner: { notFound: "NotFound", wrongMethod: [405, "MethodNotAllowed"] },
  vendor: { notFound: "NotFound", wrongMethod: [405, "MethodNotAllowed"] },
  // Synnefo (since the project dialect this API serves) answers it 405 `notAllowed`.
  quota: { notFound: "FaultNotFound", wrongMethod: [405, "FaultNotAllowed"] },
};

/** Writes of the partner API that run under an Idempotency-Key (idempotency.ts). */
export const isKeyed = (route: RouteSpec, family: Family) =>
  route.auth !== null && family === "partner" && KEYED_METHODS.has(route.method);

type ErrorStatus = `${number}` | "5XX";

/** Each error status the route can answer, with the reusable answer it refers to. */
function errorStatuses(route: RouteSpec, family: Family): Map<ErrorStatus, string> {
  const declared = route.errors ?? {};
  const has = (kind: ErrorKind) => kind in declared;
  const out = new Map<ErrorStatus, string>();
  if (family === "quota") {
    // Bodies too large are bad requests in this dialect (its 413 is a quota refusal).
    out.set("400", "FaultBadRequest");
    // A public route that reads a token itself (the identity endpoint) names the kind.
    if (route.auth || has("unauthorized")) out.set("401", "FaultUnauthorized");
    if (route.params || has("not_found")) out.set("404", "FaultNotFound");
    out.set("405", "FaultNotAllowed");
    if (has("conflict")) out.set("409", "FaultConflict");
    if (has("over_limit")) out.set("413", "FaultOverLimit");
    if (readsBody(route)) out.set("415", "FaultBadMediaType");
    if (route.auth || has("too_many_requests")) out.set("429", "FaultTooManyRequests");
    out.set("5XX", "FaultServerError");
    return out;
  }
  const keyed = isKeyed(route, family);
  const quota = has("over_limit");
  // Every route reads X-D1-Bookmark: a malformed one is a bad request anywhere.
  out.set("400", "BadRequest");
  if (route.auth) out.set("401", "Unauthorized");
  if (route.auth) out.set("403", "Forbidden");
  if (route.params || has("not_found")) out.set("404", "NotFound");
  out.set("405", "MethodNotAllowed");
  // A quota refusal under /v1 is a conflict with the holdings' state: 409 `quota-exceeded`.
  if (quota) out.set("409", "ConflictOrQuotaExceeded");
  else if (keyed || has("conflict")) out.set("409", "Conflict");
  if (route.ifMatch || has("precondition_failed")) out.set("412", "PreconditionFailed");
  if (readsBody(route)) out.set("413", "ContentTooLarge");
  if (readsBody(route)) out.set("415", "UnsupportedMediaType");
  if (keyed || has("unprocessable")) out.set("422", "UnprocessableContent");
  if (has("failed_dependency")) out.set("424", "FailedDependency");
  if (route.auth) out.set("429", "TooManyRequests");
  out.set("5XX", "ServerError");
  return out;
}

const STATUS_OF_KIND: Partial<Record<ErrorKind, ErrorStatus>> = {
  bad_request: "400",
  unauthorized: "401",
  forbidden: "403",
  not_found: "404",
  conflict: "409",
  precondition_failed: "412",
  unprocessable: "422",
  failed_dependency: "424",
};

/** The route's error answers, with its own description of a status where it gives one. */
export function errorResponses(route: RouteSpec, family: Family): Record<string, JsonSchema> {
  const own = new Map<string, string>();
  for (const [kind, description] of Object.entries(route.errors ?? {})) {
    const status =
      kind === "over_limit" ? (family === "quota" ? "413" : "409") : STATUS_OF_KIND[kind as ErrorKind];
    if (status && description) own.set(status, description);
  }
  const out: Record<string, JsonSchema> = {};
  for (const [status, name] of errorStatuses(route, family)) {
    const ref = `#/components/responses/${name}`;
    const description = own.get(status);
    out[status] = description ? { $ref: ref, description } : { $ref: ref };
  }
  return out;
}
