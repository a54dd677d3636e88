import * as v from "valibot";
import type { Principal } from "../db/credentials";
import type { Role } from "../db/schema";
import { AppError, badRequest, describeFieldErrors, type ErrorKind } from "../domain/errors";
import { admit, type Family, stillAdmitted } from "./auth";
import type { Exchange } from "./exchange";
import { withIdempotency } from "./idempotency";
import { fieldErrors } from "./issues";
import { reportingFailure } from "./pagination";
import { type AnyReply, type Reply, type Responses, render, type Schema } from "./reply";
import type { Tag } from "./tags";

/**
 * A route is declared once, with the valibot schemas of its path parameters, query and body and
 * its answers (reply.ts): the same declaration parses requests, types and renders the handler's
 * reply, and writes the OpenAPI document, so code and document cannot drift.
 */

type Out<S> = S extends Schema ? v.InferOutput<S> : undefined;
type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

export interface RouteContext<P, Q, B, A extends boolean> {
  request: Request;
  env: Env;
  ctx: ExecutionContext;
  params: P;
  query: Q;
  body: B;
  principal: A extends true ? Principal : Principal | null;
}

interface RouteFields<B extends Schema | undefined> {
  method: Method;
  /** OpenAPI-style path, e.g. `/v1/customers/{id}`. A trailing slash is always accepted. */
  path: string;
  summary: string;
  description: string;
  tag: Tag;
  /** Roles allowed to call it; `null` for a public route. */
  auth: readonly Role[] | null;
  params?: Schema;
  query?: Schema;
  body?: B;
  /** An example request body, for the document. */
  bodyExample?: B extends Schema ? v.InferInput<B> : never;
  /**
   * Error answers beyond those every route of its kind has (openapi.ts `derivedErrors`), or a
   * better description of one of those, by kind.
   */
  errors?: Partial<Record<ErrorKind, string>>;
  /** `Prefer: respond-async` applies: the work may answer 202 and an operation to poll. */
  async?: true;
  /** `If-Match` applies: a stale representation's change answers 412. */
  ifMatch?: true;
  /**
   * Its answer shows a secret once (a token, a signing secret): under an Idempotency-Key it is never
   * kept (only hashes of secrets are stored), so a retry runs the request again instead of replaying it.
   */
  secret?: true;
}

/** A route as the router and the document see it, its types erased. */
export interface RouteSpec extends RouteFields<Schema | undefined> {
  responses: Responses;
  handle: (c: RouteContext<unknown, unknown, unknown, boolean>) => Promise<AnyReply> | AnyReply;
}

export function defineRoute<
  P extends Schema | undefined = undefined,
  Q extends Schema | undefined = undefined,
  B extends Schema | undefined = undefined,
  const R extends Responses = Responses,
  const A extends readonly Role[] | null = readonly Role[] | null,
>(
  spec: Omit<RouteFields<B>, "auth" | "params" | "query"> & {
    params?: P;
    query?: Q;
    auth: A;
    responses: R;
    handle: (
      c: RouteContext<Out<P>, Out<Q>, Out<B>, A extends null ? false : true>,
    ) => Promise<Reply<R>> | Reply<R>;
  },
): RouteSpec {
  return spec as unknown as RouteSpec;
}

const MAX_BODY_BYTES = 1 << 20;

/**
 * The methods an Idempotency-Key applies to: every write, PUT included, as a PUT may answer 202
 * and an operation that a retry must find again.
 */
export const KEYED_METHODS: ReadonlySet<Method> = new Set(["POST", "PUT", "PATCH", "DELETE"]);

export function parseWith<S extends Schema>(
  schema: S,
  input: unknown,
  root: string,
  what: string,
): v.InferOutput<S> {
  const result = v.safeParse(schema, input);
  if (result.success) return result.output;
  const errors = fieldErrors(result.issues, root);
  throw badRequest(describeFieldErrors(errors, what), errors);
}

/** `application/json`, or any `+json` type, with or without parameters (`; charset=utf-8`). */
const JSON_MEDIA_TYPE = /^application\/(?:[\w.!#$&^-]+\+)?json\s*(?:;|$)/i;

/**
 * The request body, at most 1 MiB (413 past it). A body must say it is JSON: another Content-Type,
 * or none, answers 415 (an empty body needs none); and JSON is UTF-8 (RFC 8259 §8.1): other bytes
 * answer 400, where a lenient decoder would turn each into U+FFFD and have it stored. Read before
 * the Idempotency-Key is taken, so a request refused for its framing can be sent again, fixed, with
 * the same key.
 */
async function readBody(request: Request): Promise<string> {
  const tooLarge = () => new AppError("payload_too_large", "request body is larger than 1 MiB");
  const length = request.headers.get("content-length");
  if (Number(length ?? "0") > MAX_BODY_BYTES) throw tooLarge();
  // A declared length is the body's (HTTP framing): within the bound, it is read as it is.
  const bytes =
    length !== null || !request.body
      ? new Uint8Array(await request.arrayBuffer())
      : await streamedBytes(request.body, tooLarge);
  const text = utf8Text(bytes);
  if (
    (text === null || text.trim() !== "") &&
    !JSON_MEDIA_TYPE.test(request.headers.get("content-type") ?? "")
  ) {
    throw new AppError(
      "unsupported_media_type",
      "the request body must be JSON, sent with Content-Type: application/json",
    );
  }
  if (text === null) {
    throw badRequest("request body is not UTF-8", [{ point: "", message: "must be UTF-8 text" }]);
  }
  return text;
}

const UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

/** The bytes as text, or null when they are not UTF-8. */
function utf8Text(bytes: Uint8Array): string | null {
  try {
    return UTF8.decode(bytes);
  } catch {
    return null;
  }
}

/**
 * A body sent without Content-Length (chunked), counted in bytes as they arrive: refused once past
 * the bound, never read whole first.
 */
async function streamedBytes(
  body: ReadableStream<Uint8Array>,
  tooLarge: () => AppError,
): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  const reader = body.getReader();
  for (let read = await reader.read(); !read.done; read = await reader.read()) {
    bytes += read.value.byteLength;
    if (bytes > MAX_BODY_BYTES) {
      await reader.cancel();
      throw tooLarge();
    }
    chunks.push(read.value);
  }
  const all = new Uint8Array(bytes);
  let at = 0;
  for (const chunk of chunks) {
    all.set(chunk, at);
    at += chunk.byteLength;
  }
  return all;
}

/** Every request body is a JSON object; an array would otherwise pass as one with keys "0", "1"… */
function parseJsonObject(text: string): unknown {
  const value = parseJson(text);
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw badRequest("request body must be a JSON object", [{ point: "", message: "must be a JSON object" }]);
  }
  return value;
}

function parseJson(text: string): unknown {
  // An empty body is an empty object: the schema then names what is missing, and routes whose
  // body is all optional (an extension with its defaults) need not send one. So is `null`, what
  // Python clients send for no data (pycloudsigma's generic `_action` posts `json.dumps(None)`).
  const trimmed = text.trim();
  if (trimmed === "" || trimmed === "null") return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw badRequest("request body is not valid JSON");
  }
  // Only an escape makes a lone surrogate (a UTF-8 body decodes to whole characters): stored, it
  // would be answered back to clients whose strict JSON readers then fail on the whole document.
  const point = SURROGATE_ESCAPE.test(text) ? notText(value, "") : null;
  if (point !== null) {
    const message = "must be Unicode text: it has a lone UTF-16 surrogate";
    throw badRequest(`${point || "body"}: ${message}`, [{ point, message }]);
  }
  return value;
}

const SURROGATE_ESCAPE = /\\u[dD][89a-fA-F]/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * The JSON pointer of a string in `value` that is not Unicode text, or of the object holding a
 * member name that is not (the name itself cannot be answered back), or null. Walked with a
 * stack of its own: a body nested ten thousand deep must not overflow the call stack.
 */
function notText(value: unknown, at: string): string | null {
  const pending: Array<[unknown, string]> = [[value, at]];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const [item, point] = next;
    if (typeof item === "string") {
      if (LONE_SURROGATE.test(item)) return point;
      continue;
    }
    if (typeof item !== "object" || item === null) continue;
    for (const [key, member] of Object.entries(item).reverse()) {
      if (LONE_SURROGATE.test(key)) return point;
      pending.push([member, `${point}/${key.replaceAll("~", "~0").replaceAll("/", "~1")}`]);
    }
  }
  return null;
}

function decodeParams(raw: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  // `for…in`: a match's groups object has no prototype, so there is nothing inherited to skip.
  for (const key in raw) {
    const value = raw[key] as string;
    // Only an escape needs decoding (most ids have none).
    if (!value.includes("%")) {
      out[key] = value;
      continue;
    }
    try {
      out[key] = decodeURIComponent(value);
    } catch {
      out[key] = value;
    }
  }
  return out;
}

/**
 * The query as one value per name. A name given more than once (`?resource=cpu&resource=mem`, as
 * many HTTP libraries send a list) has its values joined with commas: a list filter reads them
 * all, and any other parameter refuses the joined value instead of silently keeping the last.
 */
function queryObject(url: URL): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of url.searchParams)
    out[key] = Object.hasOwn(out, key) ? `${out[key]},${value}` : value;
  return out;
}

/**
 * The query of a write that reads none: any parameter is refused, 400 naming it, rather than
 * ignored (`DELETE …?dry_run=1` would cancel). A read's stray parameters are left alone.
 */
const NO_QUERY = v.strictObject({}, "not a parameter of this request, which reads none");

/**
 * The body of a write that reads none (a cancel, a revocation, a rotation): refused as its query
 * is, rather than ignored (`DELETE …` with `{"dry_run": true}` would cancel). No body, `null` or
 * `{}` is none; a read's body is never looked at.
 */
const NO_BODY = v.strictObject({}, "not a member of this request, which reads no body");

/** Whether the request's body is read: a route's that takes one, and every write's (NO_BODY). */
export const readsBody = (route: { method: Method; body?: unknown }) =>
  route.body !== undefined || route.method !== "GET";

function parseRequest(route: RouteSpec, rawParams: Record<string, string>, url: URL, text: string) {
  const params = route.params
    ? (() => {
        const result = v.safeParse(route.params, decodeParams(rawParams));
        // A path that names nothing that could exist is simply not found.
        if (!result.success) throw new AppError("not_found", "no such resource");
        return result.output;
      })()
    : undefined;
  const query = route.query
    ? parseWith(route.query, queryObject(url), "", "query")
    : route.method !== "GET" && url.search !== ""
      ? parseWith(NO_QUERY, queryObject(url), "", "query")
      : undefined;
  const body = route.body ? parseWith(route.body, parseJsonObject(text), "", "body") : undefined;
  if (!route.body && readsBody(route)) parseWith(NO_BODY, parseJsonObject(text), "", "body");
  return { params, query, body };
}

/**
 * Runs one matched route: authenticate and rate-limit, authorize, parse, handle; partner-API writes
 * run under their Idempotency-Key. The wrong role answers as the family decides: the quota API
 * treats a token of another kind as unknown (401, as Astakos does); elsewhere it is 403. The
 * caller is named in `exchange`, for the request's log line.
 */
export async function runRoute(
  route: RouteSpec,
  family: Family,
  rawParams: Record<string, string>,
  request: Request,
  url: URL,
  env: Env,
  ctx: ExecutionContext,
  exchange: Exchange,
): Promise<Response> {
  let principal: Principal | null = null;
  if (route.auth) {
    // Authentication and every rate limit (per credential, and failed attempts per address and family).
    principal = await admit(request, env, family);
    exchange.principal = principal;
    if (!route.auth.includes(principal.role)) {
      if (family === "quota") throw new AppError("unauthorized", "this token cannot be used here");
      throw new AppError("forbidden", `this endpoint is not available to the ${principal.role} role`);
    }
  }
  const text = readsBody(route) ? await readBody(request) : "";
  const requestId = exchange.id;
  const handle = async () => {
    const reply = await route.handle({
      request,
      env,
      ctx,
      ...parseRequest(route, rawParams, url, text),
      principal,
    });
    // A GET's page that fails once its status is sent is logged with the request; a HEAD's is the
    // request's own failure, which app.ts answers 500 and logs.
    if (reply.stream && request.method === "GET")
      reply.stream = reportingFailure(reply.stream, { requestId, route: route.path });
    // A list streamed page by page goes on as long as its client reads: each page after the first
    // is read only while the credential still stands, so a revocation stops it as it would a request.
    if (reply.stream && principal) reply.stream = whileAdmitted(reply.stream, env, principal);
    return render(reply, route.responses[reply.status]?.media, family === "quota");
  };
  // Parsing runs under the key too: a 4xx for bad input is as final an answer as any other.
  return principal && family === "partner" && KEYED_METHODS.has(route.method)
    ? withIdempotency(request, env, principal, { body: text, requestId, keepAnswer: !route.secret }, handle)
    : handle();
}

/** `stream`, cut short (an error: its body does not parse) once `principal` no longer stands. */
function whileAdmitted(
  stream: ReadableStream<Uint8Array>,
  env: Env,
  principal: Principal,
): ReadableStream<Uint8Array> {
  let first = true;
  return stream.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      async transform(chunk, controller) {
        if (!first && !(await stillAdmitted(env, principal))) {
          controller.error(
            new AppError("unauthorized", "the credential was revoked while its list was read"),
          );
          return;
        }
        first = false;
        controller.enqueue(chunk);
      },
    }),
  );
}
