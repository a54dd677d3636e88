// The server `npm run soak` kills and restarts: `wrangler dev` as `npm start` runs it (local D1,
// Durable Objects and Queues, `--test-scheduled`), on a snapshot of the work tree, persisting into
// a directory of its own so every restart finds what the killed one left. It runs as its own
// process group, so one SIGKILL to the group takes wrangler, its workerd processes and anything
// under them at once, with no chance to clean up: the crash the soak is about.
import { spawn } from "node:child_process";
import {
  closeSync,
  cpSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  symlinkSync,
  writeSync,
} from "node:fs";
import net from "node:net";
import path from "node:path";

const root = path.resolve(import.meta.dirname, "..");
const wranglerBin = path.join(root, "node_modules", "wrangler", "bin", "wrangler.js");
const HOST = "127.0.0.1";

// Wrangler's telemetry, its banner's update check and Miniflare's fetch of request.cf data stay
// off: the soak needs nothing beyond 127.0.0.1.
const wranglerEnv = {
  ...process.env,
  WRANGLER_SEND_METRICS: "false",
  WRANGLER_HIDE_BANNER: "true",
  CLOUDFLARE_CF_FETCH_ENABLED: "false",
};

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A TCP port nothing listens on at 127.0.0.1 right now. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, HOST, () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/**
 * Copies what the Worker is built from (src, migrations, wrangler.toml, package.json,
 * tsconfig.json, the static assets in public) into `dir`, beside a link to node_modules: wrangler
 * dev watches its sources, and the work tree may change while the soak runs; the snapshot does not.
 */
export function snapshotTree(dir) {
  mkdirSync(dir, { recursive: true });
  for (const entry of ["src", "migrations", "wrangler.toml", "package.json", "tsconfig.json", "public"]) {
    cpSync(path.join(root, entry), path.join(dir, entry), { recursive: true });
  }
  symlinkSync(path.join(root, "node_modules"), path.join(dir, "node_modules"));
  return dir;
}

/** Runs wrangler in the snapshot; resolves with its output, rejects (with it) on failure. */
export function wrangler(tree, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [wranglerBin, ...args], {
      cwd: tree,
      env: wranglerEnv,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (chunk) => {
      output += chunk;
    });
    child.stderr.on("data", (chunk) => {
      output += chunk;
    });
    child.on("error", reject);
    child.on("exit", (code) =>
      code === 0
        ? resolve(output)
        : reject(new Error(`wrangler ${args.join(" ")} exited with ${code}\n${output}`)),
    );
  });
}

/** Live (not zombie) processes whose process group is `pgid`, read from /proc. */
function groupMembers(pgid) {
  const members = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    let stat;
    try {
      stat = readFileSync(`/proc/${name}/stat`, "utf8");
    } catch {
      continue; // Gone meanwhile.
    }
    // pid (comm) state ppid pgrp …; comm may hold spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (Number(fields[2]) === pgid && fields[0] !== "Z") members.push(Number(name));
  }
  return members;
}

export class DevServer {
  /**
   * @param {{ tree: string, persistTo: string, port: number, inspectorPort: number,
   *   vars: Record<string, string>, logFile: string }} options
   */
  constructor(options) {
    this.options = options;
    this.base = `http://${HOST}:${options.port}`;
    this.child = null;
    this.starts = 0;
  }

  get pid() {
    return this.child?.pid ?? null;
  }

  /** Starts wrangler dev as a new process group; resolves once /healthz answers 200. */
  async start({ timeoutMs = 120_000 } = {}) {
    const { tree, persistTo, port, inspectorPort, vars, logFile } = this.options;
    const log = openSync(logFile, "a");
    this.starts++;
    writeSync(log, `\n===== soak: start ${this.starts} at ${new Date().toISOString()} =====\n`);
    const args = [
      wranglerBin,
      "dev",
      "--ip",
      HOST,
      "--port",
      String(port),
      "--inspector-ip",
      HOST,
      "--inspector-port",
      String(inspectorPort),
      "--persist-to",
      persistTo,
      "--test-scheduled",
      "--show-interactive-dev-session=false",
      ...Object.entries(vars).flatMap(([name, value]) => ["--var", `${name}:${value}`]),
    ];
    const child = spawn(process.execPath, args, {
      cwd: tree,
      env: wranglerEnv,
      detached: true,
      stdio: ["ignore", log, log],
    });
    closeSync(log);
    this.child = child;
    let exited = null;
    child.on("exit", (code, signal) => {
      exited = { code, signal };
    });
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (exited) {
        throw new Error(
          `wrangler dev exited (${exited.signal ?? exited.code}) before answering; see ${logFile}`,
        );
      }
      try {
        const res = await fetch(`${this.base}/healthz`, { signal: AbortSignal.timeout(2_000) });
        await res.arrayBuffer();
        if (res.ok) return;
      } catch {
        // Not listening yet.
      }
      await sleep(100);
    }
    await this.kill();
    throw new Error(`the Worker did not answer at ${this.base} within ${timeoutMs / 1000} s; see ${logFile}`);
  }

  /**
   * SIGKILL to the whole process group (wrangler, its workerd processes, everything under them);
   * resolves once none of them is alive. Returns how many processes the group had.
   */
  async kill() {
    const pgid = this.child?.pid;
    if (!pgid) return 0;
    const members = groupMembers(pgid).length;
    try {
      process.kill(-pgid, "SIGKILL");
    } catch (error) {
      if (error.code !== "ESRCH") throw error;
    }
    const deadline = Date.now() + 15_000;
    while (groupMembers(pgid).length > 0) {
      if (Date.now() > deadline) throw new Error(`process group ${pgid} still alive 15 s after SIGKILL`);
      await sleep(50);
    }
    this.child = null;
    return members;
  }
}
