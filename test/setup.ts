import { applyD1Migrations } from "cloudflare:test";
import { env } from "cloudflare:workers";

// Setup files run outside per-file storage isolation; applyD1Migrations is idempotent.
await applyD1Migrations(env.DB, env.TEST_MIGRATIONS);

/**
 * The Worker's log lines (src/domain/log.ts: one JSON object, `{"event":…}`) are dropped here,
 * inside the isolate, before vitest's console sees them. Most are written from another I/O
 * context (a handler reached through `exports.default`, a Durable Object, a queue consumer), and
 * each such line that reaches vitest risks the plugin's known hang: a file whose last RPC waits
 * forever on a parked console line (cloudflare/workers-sdk#15719). Tests that read them spy on
 * the console (`vi.spyOn(console, "log")`), which still sees every call; anything else printed
 * goes through as before. To debug (a 500's `request.unhandled` line, say), `STRATUS_TEST_LOGS=1
 * npm test` lets them through, hang risk and all.
 */
const WORKER_LINE = /^\{"event":/;
for (const method of env.TEST_SHOW_LOGS ? [] : (["log", "warn", "error"] as const)) {
  const write = console[method].bind(console);
  console[method] = (...args: unknown[]) => {
    if (typeof args[0] === "string" && WORKER_LINE.test(args[0])) return;
    write(...args);
  };
}
