import { Router } from "itty-router";
import { AppError, isFinalAnswer, shownFault } from "../domain/errors";
import { logError, withinRequest } from "../domain/log";
import { CHALLENGES, type Family } from "./auth";
import { cloudFaultResponse } from "./cloudfault";
import { notModified } from "./conditional";
import { addCors } from "./cors";
import { type RequestDatabase, requestDatabase } from "./d1-session";
import { statusOf } from "./errors";
import { type Exchange, logExchange, requestIdOf } from "./exchange";
import { problemResponse } from "./problem";
import { type RouteSpec, runRoute } from "./route";

type Handler = (request: Request, env: Env, ctx: ExecutionContext) => Promise<Response>;

const RENDER: Record<Family, (error: AppError, url: URL, requestId: string) => Response> = {
  partner: (error, url, requestId) => problemResponse(error, url.pathname, requestId),
  // Astakos's cloudFault has a single key: the request id is in the X-Request-Id header only.
  quota: (error) => cloudFaultResponse(error),
  // The vendor spec defines no error body, so the vendor API answers problem+json like /v1.
  vendor: (error, url, requestId) => problemResponse(error, url.pathname, requestId),
};

export function familyOf(pathname: string): Family {
  if (pathname === "/account/v1.0" || pathname.startsWith("/account/")) return "quota";
  if (pathname.startsWith("/identity/")) return "quota";
  if (pathname === "/api" || pathname.startsWith("/api/")) return "vendor";
  return "partner";
}

/** `/v1/customers/{id}` → `/v1/customers/:id`, the itty-router pattern. */
const ittyPath = (path: string) => path.replace(/\{(\w+)\}/g, ":$1");

const METHOD_ORDER = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/**
 * A method and a path's first two segments (`GET v1/subscriptions`; `GET healthz/` for `/healthz`,
 * with or without its trailing slashes): the routes a request can match are those kept under its
 * own, so dispatch tries a handful of patterns, not every route of the method.
 */
function bucketOf(method: string, path: string): string {
  const [, first = "", second = ""] = path.split("/", 3);
  return `${method} ${first}/${second}`;
}

/** The bucket of a template, or null when a parameter is among its first two segments. */
function templateBucket(method: string, template: string): string | null {
  return template.split("/", 3).some((segment) => segment.startsWith("{"))
    ? null
    : bucketOf(method, template);
}

/**
 * itty-router's pattern with at most one trailing slash, as the document declares each path: its
 * own ends in `\/*$`, which took `/v1/customers//` (any number of slashes) for `/v1/customers`.
 */
function oneTrailingSlash(pattern: RegExp): RegExp {
  const ending = "\\/*$";
  if (!pattern.source.endsWith(ending)) throw new Error(`unexpected route pattern ${pattern.source}`);
  return new RegExp(`${pattern.source.slice(0, -ending.length)}\\/?$`, pattern.flags);
}

/** A route as dispatch tries it: the path pattern itty-router compiled for its template. */
interface Dispatchable {
  pattern: RegExp;
  route: RouteSpec;
  family: Family;
  /** The patterns of the more specific templates that take some of this one's paths (`narrower`). */
  shadowedBy: RegExp[];
}

/** A path template and what it serves: its methods, HEAD for a GET, and OPTIONS. */
interface PathEntry {
  template: string;
  pattern: RegExp;
  allow: string[];
}

/**
 * Whether template `b` names some of `a`'s paths more specifically: the same segments, a literal
 * (`/v1/subscriptions/schema`) where `a` has a parameter (`/v1/subscriptions/{id}`) and nowhere
 * the other way round. Such a path is `b`'s alone: `a`'s methods do not apply to it.
 */
function narrower(b: string, a: string): boolean {
  const as = a.split("/");
  const bs = b.split("/");
  if (as.length !== bs.length || a === b) return false;
  const isParam = (segment: string) => segment.startsWith("{");
  let literalForParam = false;
  for (const [i, segment] of as.entries()) {
    const other = bs[i] as string;
    if (isParam(segment)) literalForParam ||= !isParam(other);
    else if (segment !== other) return false;
  }
  return literalForParam;
}

/**
 * A HEAD's answer: its GET's without the body, saying the length the body has (RFC 9110 §9.3.2),
 * which the runtime would otherwise leave out of a response with no body.
 */
async function headOf(response: Response): Promise<Response> {
  const length = (await response.arrayBuffer()).byteLength;
  const out = new Response(null, response);
  out.headers.set("content-length", String(length));
  return out;
}

/** What every answer gets on its way out: 304 where due, the request id, CORS. */
function finish(request: Request, env: Env, response: Response, exchange: Exchange): Response {
  const read = request.method === "GET" || request.method === "HEAD";
  const out = (read && notModified(request, response)) || response;
  out.headers.set("x-request-id", exchange.id);
  const preflight = request.method === "OPTIONS" && out.status === 204;
  addCors(request, env, out, preflight ? out.headers.get("allow")?.split(", ") : undefined);
  return out;
}

/**
 * Builds the fetch handler over a set of routes: dispatches with itty-router, answers HEAD as the
 * GET of the same path without its body, OPTIONS with `Allow` (and CORS preflights), 404/405 for
 * what no route matches, and renders every error in the dialect of the family the path belongs to.
 * Anything that is not a final answer (a 4xx AppError) is logged, once, and answered as a bare 500
 * (503 `unavailable` with its advice to retry). Every answer carries `X-Request-Id`, the request's
 * D1 bookmark (d1-session.ts) and, when the origin is allowed, CORS headers; each writes one log line.
 */
export function createApp(routes: readonly RouteSpec[]): Handler {
  // itty-router compiles each template into its pattern; dispatch walks them itself, by bucket, so
  // a request's URL is parsed once (here) and handed on to the route, never again by the router.
  const router = Router();
  /** The routes of each bucket (`bucketOf`); those of no bucket are tried for every path of their method. */
  const byBucket = new Map<string, Dispatchable[]>();
  const anywhere = new Map<string, Dispatchable[]>();
  const paths = new Map<string, PathEntry>();
  const templates = [...new Set(routes.map((route) => route.path))];
  const patterns = new Map(
    templates.map((template) => {
      router.all(ittyPath(template));
      return [template, oneTrailingSlash(router.routes.at(-1)?.[1] as RegExp)] as const;
    }),
  );
  const patternOf = (template: string) => patterns.get(template) as RegExp;
  for (const route of routes) {
    const pattern = patternOf(route.path);
    const shadowedBy = templates.filter((template) => narrower(template, route.path)).map(patternOf);
    const dispatchable = { pattern, route, family: familyOf(route.path), shadowedBy };
    for (const method of route.method === "GET" ? ["GET", "HEAD"] : [route.method]) {
      const bucket = templateBucket(method, route.path);
      const [map, key] = bucket === null ? [anywhere, method] : [byBucket, bucket];
      map.set(key, [...(map.get(key) ?? []), dispatchable]);
    }
    const entry = paths.get(route.path) ?? { template: route.path, pattern, allow: ["OPTIONS"] };
    entry.allow.push(route.method, ...(route.method === "GET" ? ["HEAD"] : []));
    entry.allow.sort((a, b) => METHOD_ORDER.indexOf(a) - METHOD_ORDER.indexOf(b));
    paths.set(route.path, entry);
  }
  const entries = [...paths.values()];
  /** What a path serves, across every template it matches but those a narrower one takes it from; null when none does. */
  const pathAt = (pathname: string) => {
    const all = entries.filter((entry) => entry.pattern.test(pathname));
    const matching = all.filter((entry) => !all.some((other) => narrower(other.template, entry.template)));
    const first = matching[0];
    if (!first) return null;
    const allow = new Set(matching.flatMap((entry) => entry.allow));
    return { template: first.template, allow: METHOD_ORDER.filter((m) => allow.has(m)) };
  };

  function renderError(error: AppError, url: URL, exchange: Exchange): Response {
    const response = RENDER[exchange.family](error, url, exchange.id);
    if (error.kind === "unauthorized") response.headers.set("www-authenticate", CHALLENGES[exchange.family]);
    const allow = error.kind === "method_not_allowed" ? pathAt(url.pathname)?.allow : undefined;
    if (allow) response.headers.set("allow", allow.join(", "));
    return response;
  }

  /**
   * The request's D1 session (`requestDatabase`). A bookmark that is not one answers 400, but for
   * a path no route serves, which answers 404 (a method it does not take, 405) whatever it sends.
   */
  function openedFor(request: Request, env: Env, url: URL, exchange: Exchange): RequestDatabase {
    try {
      return requestDatabase(request, env, exchange.family);
    } catch (error) {
      const path = pathAt(url.pathname);
      if (!path) throw new AppError("not_found", `no route for ${request.method} ${url.pathname}`);
      exchange.route = path.template;
      if (!path.allow.includes(request.method))
        throw new AppError("method_not_allowed", `${request.method} is not allowed on ${url.pathname}`);
      throw error;
    }
  }

  function dispatch(request: Request, env: Env, ctx: ExecutionContext, url: URL, exchange: Exchange) {
    // Read once: each read of `url.pathname` is a call into the runtime that makes a new string.
    const { pathname } = url;
    const method = request.method;
    for (const candidates of [byBucket.get(bucketOf(method, pathname)), anywhere.get(method)]) {
      for (const { pattern, route, family, shadowedBy } of candidates ?? []) {
        const match = pattern.exec(pathname);
        if (!match || shadowedBy.some((narrow) => narrow.test(pathname))) continue;
        exchange.route = route.path;
        return runRoute(route, family, match.groups ?? {}, request, url, env, ctx, exchange);
      }
    }
    const path = pathAt(pathname);
    if (!path) throw new AppError("not_found", `no route for ${method} ${pathname}`);
    exchange.route = path.template;
    if (method !== "OPTIONS")
      throw new AppError("method_not_allowed", `${method} is not allowed on ${pathname}`);
    return new Response(null, { status: 204, headers: { allow: path.allow.join(", ") } });
  }

  async function serve(request: Request, env: Env, ctx: ExecutionContext, id: string): Promise<Response> {
    const url = new URL(request.url);
    const exchange: Exchange = {
      id,
      family: familyOf(url.pathname),
      route: null,
      principal: null,
      started: Date.now(),
    };
    let response: Response;
    let d1: RequestDatabase | undefined;
    try {
      d1 = openedFor(request, env, url, exchange);
      response = await dispatch(request, d1.env, ctx, url, exchange);
      // A HEAD reads its body to say its length: read here, a streamed list whose later page fails
      // is this request's failure, answered and logged as any other, not thrown out of the handler.
      if (request.method === "HEAD" && response.body !== null) response = await headOf(response);
    } catch (error) {
      if (isFinalAnswer(error)) {
        response = renderError(error, url, exchange);
      } else {
        // Every 5xx, thrown or answered on purpose (an invariant broken, work another attempt
        // holds), is logged here, once, with its detail, which the client is never shown.
        const shown = shownFault(error);
        logError("request.unhandled", error, {
          requestId: exchange.id,
          method: request.method,
          route: exchange.route,
          status: statusOf(shown),
        });
        response = renderError(shown, url, exchange);
      }
    }
    const settling = d1?.settle(response.status);
    if (settling) await settling;
    // An error's answer to a HEAD, without its body too.
    if (request.method === "HEAD" && response.body !== null) response = await headOf(response);
    response = finish(request, env, response, exchange);
    d1?.stamp(response);
    logExchange(request, response.status, exchange);
    return response;
  }

  // Every line the request's work writes names it (domain/log.ts).
  return (request, env, ctx) => {
    const id = requestIdOf(request);
    return withinRequest(id, () => serve(request, env, ctx, id));
  };
}
