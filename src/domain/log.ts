/**
 * The Worker's log lines: one JSON object per line, so Workers Logs indexes every field and
 * `wrangler tail --format json` can be filtered by them (README, "Observability: reading the logs").
 * Each line names its `event`; ids go in fields of their own, never inside a message.
 */

type Fields = Record<string, unknown>;

export function logEvent(event: string, fields: Fields = {}): void {
  console.log(JSON.stringify({ event, ...fields }));
}

export function logWarning(event: string, fields: Fields = {}): void {
  console.warn(JSON.stringify({ event, ...fields }));
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
  console.error(JSON.stringify({ event, ...fields, ...described(error) }));
}
