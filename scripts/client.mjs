// Writes client/schema.d.ts, the TypeScript types of openapi.json that the client (client/index.ts)
// types every call with, exactly as `npx openapi-typescript openapi.json --default-non-nullable=false`
// would: a member with a default (a purchase's `auto_renew`) stays optional in a request body, where
// the server fills it in. `--check` writes nothing and fails if the committed file differs from what
// openapi.json generates (CI's drift check).
import path from "node:path";
import { pathToFileURL } from "node:url";
import openapiTS, { astToString, COMMENT_HEADER } from "openapi-typescript";
import { writeGenerated } from "./lib.mjs";

const root = path.join(import.meta.dirname, "..");
const ast = await openapiTS(pathToFileURL(path.join(root, "openapi.json")), { defaultNonNullable: false });
await writeGenerated(path.join(root, "client", "schema.d.ts"), `${COMMENT_HEADER}${astToString(ast)}`, {
  check: process.argv.includes("--check"),
  command: "npm run client",
});
