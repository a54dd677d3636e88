import type { Principal } from "../db/credentials";
import { logEvent } from "../domain/log";
import type { Family } from "./family";

/**
 * One request as its log line tells it, filled in while it is served: app.ts starts it, the route
 * that matches names itself, authentication names the caller. The line is written once the answer
 * is built, from what is already in memory: no extra await on any request's path.
 */
export interface Exchange {
  /** The request id, answered in `X-Request-Id` and in every problem body. */
  id: string;
  family: Family;
  /** The template of the route that matched, e.g. `/v1/subscriptions/{id}`; null when none did. */
  route: string | null;
  principal: Principal | null;
  /** `Date.now()` when the request arrived. */
  started: number;
}

/** At most 200 visible ASCII characters: anything else is not echoed into headers, bodies and logs. */
const SANE_ID = /^[\x21-\x7e]{1,200}$/;

/** The client's own `X-Request-Id` if sane, else Cloudflare's `cf-ray`, else a new UUID. */
export function requestIdOf(request: Request): string {
  const given = request.headers.get("x-request-id");
  if (given !== null && SANE_ID.test(given)) return given;
  return request.headers.get("cf-ray") ?? crypto.randomUUID();
}

/** The request's log line (README, "Observability: reading the logs"). Never a secret: ids only. */
export function logExchange(request: Request, status: number, exchange: Exchange): void {
  const { principal } = exchange;
  logEvent("request", {
    requestId: exchange.id,
    family: exchange.family,
    method: request.method,
    route: exchange.route,
    status,
    durationMs: Date.now() - exchange.started,
    role: principal?.role ?? null,
    credentialId: principal?.credentialId ?? null,
    partnerId: principal?.partnerId ?? null,
  });
}
