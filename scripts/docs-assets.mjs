// Copies the API reference renderer (Scalar's standalone bundle, pinned in package.json) out of
// node_modules into public/docs/, the Workers Static Assets folder that serves it at
// /docs/scalar.js: the multi-MB file stays out of the Worker bundle and out of git. Run before
// `npm start`, the vitest suite, `npm run deploy` and `npm run docs:check` (package.json's pre-scripts).
import { copyFileSync, mkdirSync } from "node:fs";
import path from "node:path";

const root = path.resolve(import.meta.dirname, "..");
const bundle = path.join(
  root,
  "node_modules",
  "@scalar",
  "api-reference",
  "dist",
  "browser",
  "standalone.js",
);
const target = path.join(root, "public", "docs", "scalar.js");

mkdirSync(path.dirname(target), { recursive: true });
copyFileSync(bundle, target);
