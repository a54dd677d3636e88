/**
 * The layer rule (docs/ARCHITECTURE.md): a module imports its own layer and the layers below it,
 * never one above, and no import circle exists. `npm run lint:deps` checks src/ (tests are free to
 * reach anything). Type-only imports count like any other: a circle of types is still a circle,
 * and a type from a layer above ties the layers together as much as a value does.
 */

/** Each layer, and the layers below it that it may import (its own is always allowed). */
const LAYERS = {
  domain: [],
  db: ["domain"],
  objects: ["db", "domain"],
  app: ["objects", "db", "domain"],
  schemas: ["domain", "db"],
  http: ["schemas", "app", "objects", "db", "domain"],
  queues: ["schemas", "app", "objects", "db", "domain"],
  cron: ["app", "objects", "db", "domain"],
};

const layerRules = Object.entries(LAYERS).map(([layer, below]) => ({
  name: `${layer}-imports-only-below`,
  comment: below.length
    ? `src/${layer} may import only src/${layer} and ${below.map((l) => `src/${l}`).join(", ")}`
    : `src/${layer} is pure: it imports nothing else of src`,
  severity: "error",
  from: { path: `^src/${layer}/` },
  to: { path: "^src/", pathNot: `^src/(${[layer, ...below].join("|")})/` },
}));

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: "no-circular",
      comment: "No import circle, of values or of types: each module builds on the ones it imports.",
      severity: "error",
      from: {},
      to: { circular: true },
    },
    ...layerRules,
    {
      name: "every-module-in-a-layer",
      comment: `Every module of src lives in a layer (${Object.keys(LAYERS).join(", ")}), but the entry point src/index.ts, which may import anything.`,
      severity: "error",
      from: { path: "^src/", pathNot: `^src/((${Object.keys(LAYERS).join("|")})/|index\\.ts$)` },
      to: {},
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    // Type-only imports (`import type`) are dependencies too (see above).
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
  },
};
