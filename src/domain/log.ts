/**
 * The Worker's log lines: one JSON object per line, so Workers Logs indexes every field and
 * `wrangler tail --format json` can be filtered by them (README, "Observability: reading the logs").
 * Each line names its `event`; ids go in fields of their own, never inside a message.
 */

import { AsyncLocalStorage } from "node:async_hooks";

type Fields = Record<string, unknown>;

/**
 * The request a line is written within (its `requestId`), if any: every line of the work a request
 * awaits carries it, so a failure it got over (a rate limiter down, a lookup that failed) is found
 * from the id the client quotes, whichever module logs it. Work a Durable Object does runs in the
 * object's own invocation, which names its subscription, holder or serial instead.
 */
const requestLines = new AsyncLocalStorage<Fields>();

/** Runs `work` as request `requestId`'s: the lines it writes name the request. */
export function withinRequest<T>(requestId: string, work: () => T): T {
  return requestLines.run({ requestId }, work);
}

const line = (event: string, fields: Fields): string =>
  JSON.stringify({ event, ...requestLines.getStore(), ...fields });

export function logEvent(event: string, fields: Fields = {}): void {
  console.log(line(event, fields));
}

export function logWarning(event: string, fields: Fields = {}): void {
  console.warn(line(event, fields));
}

/**
 * An error's message, fit for a log line. A failed statement (drizzle's DrizzleQueryError, which
 * carries `query` and `params`) lists its bound values in its message, and those may be a secret
 * being written (a signing secret, a credential's hash): it is told by its statement alone.
 */
function messageOf(error: Error): string {
  const { query } = error as { query?: unknown };
  return typeof query === "string" && "params" in error ? `Failed query: ${query}` : error.message;
}

/** How many causes a line follows: a chain is a wrapper or two (drizzle's over D1's), never long. */
const MAX_CAUSES = 4;

/**
 * A failure as a log line tells it: its message in `error`, the stack where there is one (with
 * that message), and the messages of what caused it in `cause` (D1's reason under drizzle's
 * "Failed query"), outermost first.
 */
function described(error: unknown): Fields {
  if (!(error instanceof Error)) return { error: String(error) };
  const message = messageOf(error);
  const causes: string[] = [];
  for (let at = error.cause; at !== undefined && causes.length < MAX_CAUSES; ) {
    causes.push(at instanceof Error ? messageOf(at) : String(at));
    at = at instanceof Error ? at.cause : undefined;
  }
  return {
    error: message,
    stack: error.stack?.replace(error.message, message),
    ...(causes.length > 0 ? { cause: causes.join(" <- ") } : {}),
  };
}

/** A failure: its message in `error`, the stack where there is one, and its causes in `cause`. */
export function logError(event: string, error: unknown, fields: Fields = {}): void {
  console.error(line(event, { ...fields, ...described(error) }));
}
