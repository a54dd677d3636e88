import type { D1Migration } from "cloudflare:test";
import type { Env as AppEnv } from "../src/env";

declare global {
  namespace Cloudflare {
    interface Env extends AppEnv {
      TEST_MIGRATIONS: D1Migration[];
      /** wrangler.toml's `[[ratelimits]]`, read by vitest.config.ts. */
      TEST_RATELIMITS: Array<{ name: string; limit: number; period: number }>;
    }
    interface GlobalProps {
      mainModule: typeof import("../src/index");
      durableNamespaces: "QuotaLedger" | "SubscriptionObject";
    }
  }
}
