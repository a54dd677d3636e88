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

/** A failure: its message in `error`, and the stack where there is one. */
export function logError(event: string, error: unknown, fields: Fields = {}): void {
  const described =
    error instanceof Error ? { error: error.message, stack: error.stack } : { error: String(error) };
  console.error(JSON.stringify({ event, ...fields, ...described }));
}
