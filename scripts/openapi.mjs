// Writes openapi.json at the project root from the route declarations (src/http/routes), the
// same way the Worker serves /openapi.json, with the local server's URL. `--check` writes
// nothing and fails if the committed file differs from what the code generates (CI's drift check).
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { build } from "esbuild";
import { writeGenerated } from "./lib.mjs";

const root = path.join(import.meta.dirname, "..");
const target = path.join(root, "openapi.json");
const SERVER = "http://127.0.0.1:8787";

const entry = `
import { routes } from "./src/http/routes";
import { openApiDocument } from "./src/http/openapi";
export const document = openApiDocument(routes, ${JSON.stringify(SERVER)});
`;

/** The Durable Object base class is all the route modules take from the Workers runtime. */
const runtimeStub = {
  name: "cloudflare-workers-stub",
  setup(b) {
    b.onResolve({ filter: /^cloudflare:workers$/ }, () => ({
      path: "cloudflare:workers",
      namespace: "stub",
    }));
    b.onLoad({ filter: /.*/, namespace: "stub" }, () => ({
      contents: "export class DurableObject { constructor(ctx, env) { this.ctx = ctx; this.env = env; } }",
    }));
  },
};

async function generate() {
  const dir = await mkdtemp(path.join(tmpdir(), "stratus-openapi-"));
  try {
    const outfile = path.join(dir, "document.mjs");
    await build({
      stdin: { contents: entry, resolveDir: root, loader: "ts" },
      bundle: true,
      platform: "node",
      format: "esm",
      outfile,
      plugins: [runtimeStub],
      logLevel: "error",
    });
    const { document } = await import(pathToFileURL(outfile).href);
    return `${JSON.stringify(document, null, 2)}\n`;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await writeGenerated(target, await generate(), {
  check: process.argv.includes("--check"),
  command: "npm run openapi",
});
