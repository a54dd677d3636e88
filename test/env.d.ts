import type { D1Migration } from "cloudflare:test";

/** The tests' own bindings (vitest.config.ts), on top of the Worker's (worker-configuration.d.ts). */
declare global {
  namespace Cloudflare {
    interface Env {
      TEST_MIGRATIONS: D1Migration[];
      /** wrangler.toml's `[[ratelimits]]`, read by vitest.config.ts. */
      TEST_RATELIMITS: Array<{ name: string; limit: number; period: number }>;
      /** `STRATUS_TEST_LOGS=1`: test/setup.ts lets the Worker's log lines through. */
      TEST_SHOW_LOGS: boolean;
    }
  }
}
