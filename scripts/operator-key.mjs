// `npm run operator-key -- [--local | --remote]`: creates an operator credential. Prints the token
// (shown only now) and stores its hash in D1: the local database with --local, the deployed one
// with --remote; with neither, prints the SQL to run yourself.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { credentialInsert, formatToken, newSecret, run } from "./lib.mjs";

const where = process.argv.includes("--remote")
  ? "--remote"
  : process.argv.includes("--local")
    ? "--local"
    : null;
const id = crypto.randomUUID();
const secret = newSecret();
const sql = await credentialInsert({
  id,
  role: "operator",
  partnerId: null,
  subjectId: null,
  secret,
  label: "operator",
});

if (where) {
  const file = path.join(mkdtempSync(path.join(tmpdir(), "stratus-")), "operator.sql");
  writeFileSync(file, `${sql}\n`);
  await run("wrangler", ["d1", "execute", "DB", where, `--file=${file}`], { quiet: true });
} else {
  console.log(`Run this against your D1 database:\n\n${sql}\n`);
}
console.log(`Operator key (store it now; it is not shown again):\n${formatToken("operator", id, secret)}`);
