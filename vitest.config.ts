import path from "node:path";
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";
import { unstable_readConfig } from "wrangler";

export default defineConfig(async () => {
  const migrations = await readD1Migrations(path.join(import.meta.dirname, "migrations"));
  // The rate limits as wrangler.toml declares them (the bindings get exactly these, also in tests):
  // test/integration/rate-limits.test.ts checks that the RateLimit-Policy numbers agree.
  const { ratelimits } = unstable_readConfig({ config: path.join(import.meta.dirname, "wrangler.toml") });
  const limits = ratelimits.map(
    ({ name, simple }: { name: string; simple: { limit: number; period: number } }) => ({
      name,
      ...simple,
    }),
  );
  return {
    plugins: [
      cloudflareTest({
        wrangler: { configPath: "./wrangler.toml" },
        miniflare: {
          bindings: {
            TEST_MIGRATIONS: migrations,
            TEST_RATELIMITS: limits,
            // `STRATUS_TEST_LOGS=1 npm test` prints the Worker's log lines (test/setup.ts).
            TEST_SHOW_LOGS: process.env.STRATUS_TEST_LOGS === "1",
          },
        },
      }),
    ],
    test: {
      setupFiles: ["./test/setup.ts"],
      // Integration tests poll operations that the local queue delivers about once a second.
      testTimeout: 30_000,
      include: ["test/**/*.test.ts"],
    },
  };
});
