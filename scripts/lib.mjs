// Shared by the scripts in this folder. Node 22 (from the `node` devDependency) strips the types
// of the imported TypeScript module, so the token format has a single definition.
import { spawn } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { formatToken, hashSecret, newSecret } from "../src/domain/credentials.ts";

export { formatToken, hashSecret, newSecret };

export const sqlString = (value) => (value === null ? "NULL" : `'${String(value).replaceAll("'", "''")}'`);

/** Runs a command, inheriting stdio unless `quiet`; resolves with its output, rejects on failure. */
export function run(command, args, { quiet = false } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      stdio: quiet ? ["ignore", "pipe", "pipe"] : ["ignore", "inherit", "inherit"],
    });
    let output = "";
    child.stdout?.on("data", (chunk) => {
      output += chunk;
    });
    child.stderr?.on("data", (chunk) => {
      output += chunk;
    });
    child.on("error", reject);
    child.on("exit", (code) =>
      code === 0
        ? resolve(output)
        : reject(new Error(`${command} ${args.join(" ")} exited with ${code}\n${output}`)),
    );
  });
}

/** The SQL that stores a credential: only the secret's SHA-256 hash is kept. */
export async function credentialInsert({ id, role, partnerId, subjectId, secret, label }) {
  const hash = await hashSecret(secret);
  const values = [id, role, partnerId, subjectId, hash, label].map(sqlString).join(", ");
  return `INSERT OR IGNORE INTO credentials (id, role, partner_id, subject_id, secret_hash, label) VALUES (${values});`;
}

/** Runs `work` over `items`, `width` at a time. */
export async function inParallel(items, width, work) {
  const out = new Array(items.length);
  let next = 0;
  const lanes = Array.from({ length: Math.min(width, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await work(items[i], i);
    }
  });
  await Promise.all(lanes);
  return out;
}

/**
 * Writes a file generated from the code, or, with `check`, writes nothing and fails the process if
 * the committed file differs from what was generated (CI's drift check). `command` regenerates it.
 */
export async function writeGenerated(target, generated, { check, command }) {
  const name = path.relative(path.join(import.meta.dirname, ".."), target);
  if (!check) {
    await writeFile(target, generated);
    console.log(`wrote ${name}`);
    return;
  }
  const committed = await readFile(target, "utf8").catch(() => "");
  if (committed === generated) {
    console.log(`${name} is up to date`);
    return;
  }
  console.error(`${name} differs from what \`${command}\` generates: run it and commit the result.`);
  process.exitCode = 1;
}
