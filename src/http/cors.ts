/**
 * CORS for browsers calling the API from the origins `CORS_ORIGINS` lists (comma-separated, `*`
 * for any; empty, the default, turns CORS off). Credentials travel in headers, never cookies, so
 * no `Access-Control-Allow-Credentials`. An origin not listed gets no CORS header at all, and its
 * browser refuses to hand the answer to the page; a preflight is still answered 204 (with `Allow`),
 * as any OPTIONS is, so only the missing headers say no.
 */

/** What a page may read of an answer besides the CORS-safelisted headers. */
const EXPOSED = [
  "Location",
  "Retry-After",
  "ETag",
  "X-Request-Id",
  "X-D1-Bookmark",
  "Idempotent-Replayed",
  "Preference-Applied",
  "RateLimit",
  "RateLimit-Policy",
].join(", ");

/** Every request header some route reads. */
const ALLOWED_HEADERS = [
  "Content-Type",
  "Authorization",
  "X-Api-Key",
  "X-Auth-Token",
  "CMW-Auth-Token",
  "Idempotency-Key",
  "Prefer",
  "If-Match",
  "If-None-Match",
  "X-Request-Id",
  "X-D1-Bookmark",
].join(", ");

/** Two hours: the most Chromium caches a preflight for. */
const MAX_AGE_SECONDS = "7200";

interface Allowlist {
  source: string;
  any: boolean;
  origins: Set<string>;
}

let parsed: Allowlist | undefined;

/** The allowlist, parsed once per isolate (per value of the var); null when CORS is off. */
function allowlist(env: Env): Allowlist | null {
  const source = env.CORS_ORIGINS ?? "";
  if (parsed?.source !== source) {
    const entries = source
      .split(",")
      .map((origin) => origin.trim().replace(/\/+$/, "").toLowerCase())
      .filter((origin) => origin !== "");
    parsed = { source, any: entries.includes("*"), origins: new Set(entries) };
  }
  const list: Allowlist = parsed;
  return list.any || list.origins.size > 0 ? list : null;
}

/**
 * Adds the CORS headers of an answer to `request`: `Vary: Origin` whenever CORS is on (the answer
 * depends on it), and for a listed origin `Access-Control-Allow-Origin` and the exposed headers;
 * for a listed origin's preflight (`methods`: what the path serves), what it may send.
 */
export function addCors(request: Request, env: Env, response: Response, methods?: readonly string[]): void {
  const list = allowlist(env);
  if (!list) return;
  response.headers.append("vary", "Origin");
  const origin = request.headers.get("origin");
  if (origin === null || !(list.any || list.origins.has(origin.toLowerCase()))) return;
  response.headers.set("access-control-allow-origin", origin);
  response.headers.set("access-control-expose-headers", EXPOSED);
  if (methods && request.headers.has("access-control-request-method")) {
    response.headers.set("access-control-allow-methods", methods.join(", "));
    response.headers.set("access-control-allow-headers", ALLOWED_HEADERS);
    response.headers.set("access-control-max-age", MAX_AGE_SECONDS);
  }
}
