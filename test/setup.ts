import { applyD1Migrations } from "cloudflare:test";
import { env } from "cloudflare:workers";

// Setup files run outside per-file storage isolation; applyD1Migrations is idempotent.
await applyD1Migrations(env.DB, env.TEST_MIGRATIONS);

/**
 * Every request and queue batch writes a log line, and the suite makes thousands. They are dropped
 * here, inside the isolate, rather than by vitest's `onConsoleLog`: each line that reaches vitest
 * from a handler's I/O context is one more chance of the plugin's known hang, a file whose last
 * RPC waits forever on a parked console line (cloudflare/workers-sdk#15719). Other lines (errors,
 * cron runs) still go through; spies (`vi.spyOn(console, "log")`) still see every line.
 */
const ROUTINE = /^\{"event":"(request|queue)"/;
const write = console.log.bind(console);
console.log = (...args: unknown[]) => {
  if (typeof args[0] === "string" && ROUTINE.test(args[0])) return;
  write(...args);
};
