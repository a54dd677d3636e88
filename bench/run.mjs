// `npm run bench`: load benchmark of stratus's hot paths on workerd, without wrangler's dev proxy,
// and the renewal of 10,000 due subscriptions by one cron trigger.
//
// 1. Bundles the Worker as production does (`wrangler deploy --dry-run`) and gzips the bundle.
// 2. Starts one Miniflare (workerd) with three Workers, each on its own 127.0.0.1 port (direct
//    sockets, no entry proxy): the stratus bundle with every binding wrangler.toml declares (read
//    by wrangler itself: D1, Durable Objects, the queues' producers and consumers, vars; not the
//    cron, which the bench fires by hand), a bare baseline Worker (bench/baseline.mjs) and an
//    instrumented twin of stratus (bench/profiled.mjs) that only ever gets single requests, to
//    explain the numbers.
// 3. Applies the D1 migrations, stores credentials with known secrets, seeds through the API
//    (partner, service, 100 customers, catalog, limits, 100 subscriptions bought) and inserts
//    read-model rows straight into `subscriptions` for the list benchmark (10k, then 100k).
// 4. Drives each hot path and its baseline with autocannon for a fixed time, in the same run, and
//    counts the CPU each request costs (workerd's and this process's). Then restarts workerd on
//    the same storage with its inspector and takes a CPU profile of each path under load. Meanwhile
//    workerd writes its console output to a file, read back at the end: every request must have
//    its log line.
// 5. Renewals (bench/renewals.mjs), on a fresh workerd with the stratus Worker alone: 10,000
//    auto-renewing subscriptions bought through the API, one scheduled() call just before they
//    end, the time until D1 shows all 10,000 renewals (6-minute limit) and workerd's peak memory.
// 6. Prints one report; the same goes to bench/.out/report.md.
//
// Environment: BENCH_DURATION (seconds per measurement, default 10), BENCH_CONNECTIONS (default
// 16), BENCH_REF (a git ref: bench that commit's Worker and migrations instead of the work tree),
// BENCH_RENEWALS ("0": skip the renewal phase, "only": nothing else), BENCH_RENEWALS_TIMEOUT
// (seconds, default 360). Everything listens on and targets 127.0.0.1 only; storage lives in a
// temp dir removed at the end.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  copyFileSync,
  createReadStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { gzipSync } from "node:zlib";
import autocannon from "autocannon";
import { convertV4MiniflareOptions, Log, LogLevel, Miniflare } from "miniflare";
import workerd from "workerd";
import { unstable_getMiniflareWorkerOptions } from "wrangler";
import { demo } from "../scripts/demo-data.mjs";
import { credentialInsert, formatToken, inParallel, run } from "../scripts/lib.mjs";
import { benchRenewals, renewalLog, renewalReport } from "./renewals.mjs";

const root = path.resolve(import.meta.dirname, "..");
const DURATION = Number(process.env.BENCH_DURATION ?? 10);
// Path and baseline alternate in short rounds: on a shared VM the machine's speed drifts over
// seconds (the same code measured 0.66–0.95 of its baseline with 2 rounds of 5 s), and a ratio
// of two adjacent rounds cancels most of that drift; the row's ratio is the median of the pairs.
const ROUNDS = 5;
const WARMUP = Math.max(1, Math.round(DURATION / 5));
const PROFILE_SECONDS = Math.max(1, Math.round(DURATION / 3));
// The CPU profiles' sampling interval, and the most one sample may stand for (summarize).
const SAMPLING_US = 250;
const MAX_SAMPLE_US = 10 * SAMPLING_US;
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 16);
const HOST = "127.0.0.1";
/** The route template each row's requests name in their log line (`route`). */
const LOGGED_ROUTES = {
  get: "/v1/subscriptions/{id}",
  list: "/v1/subscriptions",
  commissionOne: "/account/v1.0/commissions",
  commissionSpread: "/account/v1.0/commissions",
  create: "/v1/subscriptions",
};
// BENCH_RENEWALS: "0" skips the renewal phase, "only" runs nothing else.
const PHASES = {
  rows: process.env.BENCH_RENEWALS !== "only",
  renewals: process.env.BENCH_RENEWALS !== "0",
};
// BENCH_ONLY: a comma-separated subset of the rows (get, list, commission, create) to measure.
const ONLY = process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(",")) : null;
const wanted = (row) => ONLY === null || ONLY.has(row);
// BENCH_PROFILES: a directory to keep CPU profiles in (.cpuprofile): each row's, of the stratus
// isolate; the renewal phase's seeding and renewing, of the stratus and the D1 isolate (`-d1`).
const PROFILES = process.env.BENCH_PROFILES ? path.resolve(process.env.BENCH_PROFILES) : null;
const startedAt = Date.now();
// The whole run stays under 10 minutes: the renewals stop waiting (and report how many were done)
// 30 s before, leaving time for the report and the clean-up.
const RUN_DEADLINE = startedAt + 570_000;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const log = (...args) => console.error(`[bench ${((Date.now() - startedAt) / 1000).toFixed(0)}s]`, ...args);

// ---------------------------------------------------------------------------------------------
// Build

/** The tree to bench: the work tree, or BENCH_REF exported into `work` (sharing node_modules). */
function sourceTree(work) {
  const ref = process.env.BENCH_REF;
  if (!ref) return root;
  const tree = path.join(work, "source");
  mkdirSync(tree);
  const archive = execFileSync("git", ["-C", root, "archive", "--format=tar", ref], { maxBuffer: 1 << 30 });
  execFileSync("tar", ["-x", "-C", tree], { input: archive });
  symlinkSync(path.join(root, "node_modules"), path.join(tree, "node_modules"));
  return tree;
}

/**
 * The stratus Worker's Miniflare options as wrangler reads wrangler.toml (so every binding it
 * declares: D1, Durable Objects, each queue's producer and consumer, vars), minus what the bench
 * supplies itself (the module) or fires by hand (the cron trigger), and minus the static assets:
 * Miniflare would put its asset router in front of every request (a few times slower than the
 * Worker itself here), where Cloudflare matches assets before the Worker runs; the rows measure the
 * Worker. Empty sections are dropped.
 */
function wranglerConfig(tree) {
  const { workerOptions } = unstable_getMiniflareWorkerOptions(path.join(tree, "wrangler.toml"));
  const {
    rootPath: _rootPath,
    modulesRules: _modulesRules,
    assets: _assets,
    cronTriggers = [],
    compatibilityDate,
    compatibilityFlags = [],
    ...rest
  } = workerOptions;
  const empty = (v) =>
    v === undefined ||
    (Array.isArray(v) && v.length === 0) ||
    (typeof v === "object" && v !== null && Object.values(v).every(empty));
  const bindings = Object.fromEntries(Object.entries(rest).filter(([, v]) => !empty(v)));
  // One local database for every D1 binding's id, shared with the baseline Worker.
  bindings.d1Databases = Object.fromEntries(
    Object.keys(bindings.d1Databases ?? {}).map((name) => [name, `stratus-bench-${name}`]),
  );
  return { compatibilityDate, compatibilityFlags, bindings, crons: cronTriggers };
}

async function build(tree, dir) {
  const wrangler = path.join(root, "node_modules", "wrangler", "bin", "wrangler.js");
  const config = path.join(tree, "wrangler.toml");
  const args = [wrangler, "deploy", "--dry-run", "--config", config, "--outdir", dir];
  const output = await run(process.execPath, args, { quiet: true });
  const reported = output.match(/Total Upload: ([\d.]+) KiB \/ gzip: ([\d.]+) KiB/);
  const bundle = readFileSync(path.join(dir, "index.js"));
  return {
    bundlePath: path.join(dir, "index.js"),
    rawKiB: bundle.byteLength / 1024,
    gzipKiB: gzipSync(bundle).byteLength / 1024,
    wranglerGzipKiB: reported ? Number(reported[2]) : null,
  };
}

// ---------------------------------------------------------------------------------------------
// Workers

/**
 * One Miniflare (one workerd process): the stratus Worker with wrangler.toml's bindings and, with
 * `twins`, the baseline Worker and the instrumented twin. `onLog` gets the Workers' console
 * output ({ level, message }); by default it goes to stderr, so stdout carries only the report.
 */
function startMiniflare({
  dir,
  bundlePath,
  config,
  state,
  twins = true,
  onLog = echoLog,
  inspect = false,
  stdoutTo = null,
}) {
  const common = {
    compatibilityDate: config.compatibilityDate,
    compatibilityFlags: config.compatibilityFlags,
  };
  const { queueConsumers: _consumers, durableObjects, ...stratusBindings } = config.bindings;
  const socket = [{ host: HOST, port: 0 }];
  const workers = [
    {
      name: "stratus",
      modules: [{ type: "ESModule", path: bundlePath }],
      modulesRoot: dir,
      ...common,
      ...config.bindings,
      unsafeDirectSockets: socket,
    },
  ];
  if (twins) {
    // The profiled twin imports the bundle as ./stratus.js from the same folder.
    copyFileSync(bundlePath, path.join(dir, "stratus.js"));
    copyFileSync(path.join(root, "bench", "profiled.mjs"), path.join(dir, "profiled.mjs"));
    workers.push(
      {
        name: "baseline",
        modules: [{ type: "ESModule", path: path.join(root, "bench", "baseline.mjs") }],
        modulesRoot: path.join(root, "bench"),
        ...common,
        // The same database: the bare select reads the same rows the list path does.
        d1Databases: { DB: config.bindings.d1Databases.DB },
        durableObjects: { BARE: { className: "BareObject", useSQLite: true } },
        unsafeDirectSockets: socket,
      },
      {
        name: "profiled",
        modules: [
          { type: "ESModule", path: path.join(dir, "profiled.mjs") },
          { type: "ESModule", path: path.join(dir, "stratus.js") },
        ],
        modulesRoot: dir,
        ...common,
        // Every binding but the queue consumers (stratus consumes), and stratus's own objects, so
        // the profile sees the same state as the timed runs.
        ...stratusBindings,
        durableObjects: Object.fromEntries(
          Object.entries(durableObjects ?? {}).map(([name, o]) => [name, { ...o, scriptName: "stratus" }]),
        ),
        unsafeDirectSockets: socket,
      },
    );
  }
  const options = convertV4MiniflareOptions({
    host: HOST,
    port: 0,
    // No Request.cf from the network: nothing but 127.0.0.1 is ever contacted.
    cf: false,
    // The CPU profiles are taken through workerd's inspector (on 127.0.0.1 too). Only then: with an
    // inspector, V8 keeps every console message for a debugger that may attach, which made each
    // request's log line cost ~160 µs more CPU than it does without (bench/RESULTS.md, 2026-12-01 late).
    ...(inspect ? { inspectorPort: 0, inspectorHost: HOST } : {}),
    log: new Log(LogLevel.WARN),
    handleStructuredLogs: onLog,
    resourcePersistencePath: state,
    workers,
  });
  if (!stdoutTo) return new Miniflare(options);
  // Miniflare reads the binary's path when it spawns workerd, during `ready`.
  const own = process.env.MINIFLARE_WORKERD_PATH;
  process.env.MINIFLARE_WORKERD_PATH = workerdWritingTo(dir, stdoutTo);
  const mf = new Miniflare(options);
  const restore = () => {
    if (own === undefined) delete process.env.MINIFLARE_WORKERD_PATH;
    else process.env.MINIFLARE_WORKERD_PATH = own;
  };
  mf.ready.then(restore, restore);
  return mf;
}

/**
 * A launcher of workerd whose standard output, where every console line goes, is appended to
 * `file` instead of a pipe into this process. Miniflare would parse each line here, on the event
 * loop autocannon runs on, and a Worker's write into that pipe would wait on it: that costs the
 * machine as much CPU as the line itself, and nothing of it is the Worker's in production, where
 * the runtime ships console output after the invocation (bench/RESULTS.md, 2026-12-02 third
 * session). The lines are read back, counted and echoed once the rows are done (`readLog`).
 */
function workerdWritingTo(dir, file) {
  const binary = process.env.MINIFLARE_WORKERD_PATH ?? workerd.default;
  const launcher = path.join(dir, "workerd-stdout-to-file.sh");
  const quote = (s) => `'${s.replaceAll("'", "'\\''")}'`;
  writeFileSync(launcher, `#!/bin/sh\nexec ${quote(binary)} "$@" >> ${quote(file)}\n`, { mode: 0o755 });
  return launcher;
}

/**
 * What workerd wrote to `file` (`workerdWritingTo`): each line but the per-request and per-batch
 * ones echoed as `echoLog` would have, and the number of per-request lines by method and route
 * template.
 */
async function readLog(file) {
  const requestLines = new Map();
  if (!existsSync(file)) return requestLines;
  for await (const line of createInterface({ input: createReadStream(file), crlfDelay: Infinity })) {
    if (!line) continue;
    let entry;
    try {
      entry = JSON.parse(line);
    } catch {
      console.error(`[workerd] ${line}`);
      continue;
    }
    const message = String(entry.message ?? "");
    if (message.startsWith('{"event":"request"')) {
      const { method, route } = JSON.parse(message);
      const key = `${method} ${route}`;
      requestLines.set(key, (requestLines.get(key) ?? 0) + 1);
    } else echoLog({ level: entry.level, message });
  }
  return requestLines;
}

/**
 * Per method and route template of the timed rows: their requests and the per-request log lines
 * workerd wrote (warm-ups, seeding and the profiles log too, so there are more lines).
 */
function loggedPerRoute(rows, lines) {
  const out = new Map();
  for (const r of rows) {
    const entry = out.get(r.logged) ?? { requests: 0, lines: lines.get(r.logged) ?? 0 };
    entry.requests += r.path.total;
    out.set(r.logged, entry);
  }
  return out;
}

const logLinesComplete = (logLines) => [...logLines.values()].every((n) => n.lines >= n.requests);

/** Echoes what the Workers log, but the per-request and per-batch lines: a run makes millions. */
function echoLog({ level, message }) {
  if (/^\{"event":"(request|queue)"/.test(message)) return;
  console.error(`[workerd ${level}] ${message}`);
}

async function originOf(mf, worker) {
  const url = await mf.unsafeGetDirectURL(worker);
  if (url.hostname !== HOST) throw new Error(`${worker} listens on ${url.host}, not ${HOST}`);
  return url.origin;
}

// ---------------------------------------------------------------------------------------------
// Seeding

async function applyMigrations(db, tree) {
  const files = readdirSync(path.join(tree, "migrations"))
    .filter((f) => f.endsWith(".sql"))
    .sort();
  for (const file of files) {
    const text = readFileSync(path.join(tree, "migrations", file), "utf8");
    for (const statement of text.split("--> statement-breakpoint")) {
      if (statement.trim()) await db.prepare(statement.trim()).run();
    }
  }
  return files;
}

const CREDENTIALS = {
  operator: { id: "b0000000-0000-7000-8000-0000000000a0", secret: "bench-operator-secret-000000" },
  partner: { id: "b0000000-0000-7000-8000-0000000000a1", secret: "bench-partner-secret-0000001" },
  service: { id: "b0000000-0000-7000-8000-0000000000a2", secret: "bench-service-secret-0000002" },
};

function client(origin) {
  return async (method, route, { token, header = "x-api-key", body, expect = [200, 201] } = {}) => {
    const res = await fetch(`${origin}${route}`, {
      method,
      headers: { ...(token ? { [header]: token } : {}), "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!expect.includes(res.status)) throw new Error(`${method} ${route}: ${res.status} ${text}`);
    return text ? JSON.parse(text) : null;
  };
}

/** Credentials with known secrets, a partner, a service and the demo catalog: what every phase needs. */
async function seedCatalog(db, api) {
  const { operator, partner, service } = CREDENTIALS;
  await db
    .prepare(
      await credentialInsert({
        ...operator,
        role: "operator",
        partnerId: null,
        subjectId: null,
        label: "bench",
      }),
    )
    .run();
  const op = formatToken("operator", operator.id, operator.secret);
  // `unlimited`: the bench measures the API, not its rate limits (a Worker from before the tiers,
  // BENCH_REF, ignores the field and has no limits anyway).
  const p = await api("POST", "/v1/partners", {
    token: op,
    body: { name: "Bench Partner", rate_limit: "unlimited" },
  });
  if (p.rate_limit !== undefined && p.rate_limit !== "unlimited")
    throw new Error(`the bench partner is in the ${p.rate_limit} rate-limit tier, not unlimited`);
  const s = await api("POST", "/v1/services", { token: op, body: { partner: p.id, name: "bench" } });
  const key = { ...partner, role: "partner", partnerId: p.id, subjectId: p.id, label: "bench" };
  const tok = { ...service, role: "service", partnerId: p.id, subjectId: s.id, label: "bench" };
  await db.prepare(await credentialInsert(key)).run();
  await db.prepare(await credentialInsert(tok)).run();
  const partnerKey = formatToken("partner", partner.id, partner.secret);
  const serviceToken = formatToken("service", service.id, service.secret);

  // The demo catalog (one product of every kind) and the service's own resource.
  await api("PUT", "/v1/resources/bench.vm", { token: op, body: { service: "bench", unit: null } });
  for (const { name, ...resource } of demo.resources.filter((r) => r.service === "stratus")) {
    await api("PUT", `/v1/resources/${name}`, { token: op, body: resource });
  }
  for (const { id, ...product } of demo.products) {
    await api("PUT", `/v1/products/${id}`, {
      token: op,
      body: { ...product, currency: "EUR", quota_resource: `stratus.${id}` },
    });
  }
  return { operatorKey: op, partnerId: p.id, partnerKey, serviceToken };
}

async function seedThroughApi(db, api) {
  const { operatorKey: op, partnerId, partnerKey, serviceToken } = await seedCatalog(db, api);

  // 100 customers (quota holders), each with room on bench.vm; the first 10 can buy everything.
  const customers = await inParallel(Array.from({ length: 100 }), 8, async (_, i) => {
    const c = await api("POST", "/v1/customers", {
      token: partnerKey,
      body: { name: `Bench Customer ${i}`, email: `c${i}@bench.example` },
    });
    return c.id;
  });
  const limits = customers.flatMap((c, i) => [
    [c, "bench.vm"],
    ...(i < 10 ? demo.products.map((product) => [c, `stratus.${product.id}`]) : []),
  ]);
  await inParallel(limits, 8, ([c, resource]) =>
    api("PUT", `/v1/customers/${c}/quotas`, {
      token: op,
      body: { source: "system", resource, limit: 1_000_000_000_000 },
    }),
  );

  // 100 subscriptions bought through the API, every kind: the single-GET set.
  const kinds = ["cpu", "mem", "dssd", "ip", "vlan", "msft-windows-server", "tx", "cumulus", "nimbus", "cpu"];
  const bought = await inParallel(customers.slice(0, 10), 4, async (customer) => {
    const objects = kinds.map((resource) => ({ customer, resource, amount: 1, period: "1 month" }));
    const res = await api("POST", "/v1/subscriptions/", { token: partnerKey, body: { objects } });
    return res.objects.map((o) => o.id);
  });
  return { partnerId, partnerKey, serviceToken, customers, subscriptions: bought.flat() };
}

function uuidv7(ms) {
  const hex = ms.toString(16).padStart(12, "0");
  const r = randomBytes(10);
  r[0] = (r[0] & 0x0f) | 0x70;
  r[2] = (r[2] & 0x3f) | 0x80;
  const rest = r.toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${rest.slice(0, 4)}-${rest.slice(4, 8)}-${rest.slice(8, 20)}`;
}

const DAY = 86_400_000;

/**
 * Read-model rows as SubscriptionObjects project them: the bench partner, the demo products,
 * about half active, a sixth not started yet, a third expired or cancelled, created over the past
 * year. Ids are UUIDv7 of the creation time, shuffled, so the 100k set interleaves the 10k one.
 */
function projectionRows(count, partnerId, customers, now) {
  const rows = [];
  for (let i = 0; i < count; i++) {
    const created = now - 365 * DAY + Math.floor(Math.random() * 364 * DAY);
    const id = uuidv7(created);
    const product = demo.products[Math.floor(Math.random() * demo.products.length)];
    const customerId = customers[Math.floor(Math.random() * customers.length)];
    const openEnded = product.kind === "depletable" || product.kind === "caas";
    const roll = Math.random();
    let start = created;
    let end = openEnded ? null : now + (1 + Math.floor(Math.random() * 60)) * DAY;
    let endedAt = null;
    let endReason = null;
    if (roll >= 0.5 && roll < 0.65 && !openEnded) {
      start = now + (1 + Math.floor(Math.random() * 30)) * DAY;
      end = start + 30 * DAY;
    } else if (roll >= 0.65 && roll < 0.85 && !openEnded) {
      end = Math.min(created + 30 * DAY, now - DAY);
      endReason = "expired";
      endedAt = new Date(end).toISOString();
    } else if (roll >= 0.85) {
      endedAt = new Date(Math.min(created + 7 * DAY, now - DAY)).toISOString();
      endReason = "cancelled";
    }
    const amount = product.kind === "per_object" || product.kind === "caas" ? 1 : 1 + (i % 8);
    const unitPriceMinor = Math.round(Number(product.unit_price) * 100);
    const body = {
      id,
      partnerId,
      customerId,
      orderId: uuidv7(created),
      product: product.id,
      kind: product.kind,
      quotaResource: `stratus.${product.id}`,
      unitPriceMinor,
      currency: "EUR",
      amount,
      startTime: new Date(start).toISOString(),
      endTime: end === null ? null : new Date(end).toISOString(),
      period: openEnded ? null : "1 month",
      createdWith: openEnded ? null : "period",
      autoRenew: i % 3 === 0,
      priceMinor: String(amount * unitPriceMinor * (openEnded ? 1 : 720)),
      remaining: product.kind === "depletable" ? amount * 10 : null,
      endedAt,
      endReason,
      rootId: id,
      previousId: null,
      nextId: null,
      runs: [],
      serial: 1 + i,
      version: 2,
      createdAt: new Date(created).toISOString(),
    };
    rows.push(body);
  }
  return rows;
}

/**
 * Inserts records 2,000 a statement: one JSON parameter, unpacked by SQLite's json_each. Each with
 * its order, completed, as a purchase that took effect has it (a depletable's status reads it).
 */
async function insertProjections(db, records) {
  const statements = [];
  for (let i = 0; i < records.length; i += 2000) {
    const chunk = JSON.stringify(records.slice(i, i + 2000));
    statements.push(
      db
        .prepare(
          `INSERT INTO subscriptions (id, partner_id, customer_id, product, kind, amount, start_time, end_time,
             auto_renew, ended_at, root_id, previous_id, next_id, order_id, body, version)
           SELECT value->>'id', value->>'partnerId', value->>'customerId', value->>'product', value->>'kind',
             value->>'amount', value->>'startTime', value->>'endTime', value->>'autoRenew', value->>'endedAt',
             value->>'rootId', value->>'previousId', value->>'nextId', value->>'orderId', value, value->>'version'
           FROM json_each(?)`,
        )
        .bind(chunk),
      db
        .prepare(
          `INSERT INTO orders (id, partner_id, customer_id, lines, total_minor, currency, state, created_at)
           SELECT value->>'orderId', value->>'partnerId', value->>'customerId', '[]', value->>'priceMinor', 'EUR',
             'completed', value->>'createdAt'
           FROM json_each(?)`,
        )
        .bind(chunk),
    );
  }
  for (let i = 0; i < statements.length; i += 5) await db.batch(statements.slice(i, i + 5));
}

// ---------------------------------------------------------------------------------------------
// Load

/** Answers of the running measurement that were not the expected status, by status. */
const unexpected = new Map();

/** Cycles through `n` values: a fresh one for every request across all connections. */
function cycle(n, make) {
  let i = 0;
  return () => make(i++ % n);
}

/**
 * CPU seconds (user + system) spent so far by this process (autocannon; during the rows Miniflare
 * no longer reads workerd's console output here, `workerdWritingTo`) and by its workerd children: per request, a figure that other load on the machine barely moves,
 * unlike requests per second.
 */
function cpuSeconds() {
  const ticks = (pid) => {
    try {
      const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
      return Number(fields[11]) + Number(fields[12]);
    } catch {
      return 0;
    }
  };
  const children = (pid) => {
    try {
      return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean);
    } catch {
      return [];
    }
  };
  const workerd = children(process.pid).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/comm`, "utf8").trim() === "workerd";
    } catch {
      return false;
    }
  });
  const hz = 100;
  return {
    node: ticks(process.pid) / hz,
    workerd: workerd.reduce((sum, pid) => sum + ticks(pid), 0) / hz,
  };
}

/**
 * Drives `origin` for `duration` seconds. `next()` gives each request's {path, body}; every
 * answer that is not `expect` counts as an error, as do socket errors and timeouts.
 */
async function load(origin, { method = "GET", headers = {}, next, expect = 200, duration = DURATION }) {
  const cpuBefore = cpuSeconds();
  const result = await autocannon({
    url: origin,
    connections: CONNECTIONS,
    duration,
    timeout: 10,
    method,
    headers: { ...headers, ...(method === "GET" ? {} : { "content-type": "application/json" }) },
    requests: [
      {
        setupRequest: (request) => {
          const { path: p, body } = next();
          return { ...request, path: p, ...(body === undefined ? {} : { body }) };
        },
        onResponse: (status) => {
          if (status !== expect) unexpected.set(status, (unexpected.get(status) ?? 0) + 1);
        },
      },
    ],
  });
  const cpuAfter = cpuSeconds();
  const unexpectedCount = [...unexpected.values()].reduce((a, b) => a + b, 0);
  const statuses = Object.fromEntries(unexpected);
  unexpected.clear();
  return {
    rps: result.requests.total / result.duration,
    total: result.requests.total,
    seconds: result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    mean: result.latency.average,
    errors: unexpectedCount + result.errors + result.timeouts,
    statuses,
    cpu: {
      workerd: cpuAfter.workerd - cpuBefore.workerd,
      node: cpuAfter.node - cpuBefore.node,
    },
  };
}

/** Several rounds of one measurement as one: requests over time, p50 weighted, the worst p99. */
function combine(rounds) {
  const total = rounds.reduce((sum, r) => sum + r.total, 0);
  const weighted = (key) => rounds.reduce((sum, r) => sum + r[key] * r.total, 0) / Math.max(1, total);
  const statuses = {};
  for (const r of rounds) {
    for (const [status, n] of Object.entries(r.statuses)) statuses[status] = (statuses[status] ?? 0) + n;
  }
  return {
    rps: total / rounds.reduce((sum, r) => sum + r.seconds, 0),
    total,
    p50: weighted("p50"),
    p99: Math.max(...rounds.map((r) => r.p99)),
    mean: weighted("mean"),
    errors: rounds.reduce((sum, r) => sum + r.errors, 0),
    statuses,
    // µs of CPU per request, of workerd and of the load generator's process.
    cpuUs: {
      workerd: (1e6 * rounds.reduce((sum, r) => sum + r.cpu.workerd, 0)) / Math.max(1, total),
      node: (1e6 * rounds.reduce((sum, r) => sum + r.cpu.node, 0)) / Math.max(1, total),
    },
  };
}

/**
 * A path and its baseline, each warmed up, then measured in alternating rounds so that whatever
 * else the machine does weighs on both alike.
 */
async function measurePair(origin, spec, baseline, baseSpec) {
  await load(origin, { ...spec, duration: WARMUP });
  await load(baseline, { ...baseSpec, duration: WARMUP });
  const paths = [];
  const bases = [];
  for (let round = 0; round < ROUNDS; round++) {
    // Who goes first alternates too, so neither always runs on the other's warm caches.
    const measure = {
      path: async () => paths.push(await load(origin, { ...spec, duration: DURATION / ROUNDS })),
      base: async () => bases.push(await load(baseline, { ...baseSpec, duration: DURATION / ROUNDS })),
    };
    for (const which of round % 2 === 0 ? ["path", "base"] : ["base", "path"]) await measure[which]();
  }
  const pairs = paths.map((p, i) => p.rps / bases[i].rps).sort((a, b) => a - b);
  return [combine(paths), combine(bases), pairs];
}

// ---------------------------------------------------------------------------------------------
// Profile: single requests to the instrumented twin

function label(entry) {
  if (entry.kind === "do") return `DO ${entry.sql}`;
  if (entry.sql.startsWith("batch of")) return `D1 ${entry.sql}`;
  const sql = entry.sql.replace(/\s+/g, " ").trim();
  const verb = sql.split(" ")[0].toLowerCase();
  const table = sql.match(/(?:from|into|update)\s+"?(\w+)"?/i)?.[1] ?? "?";
  return `D1 ${verb} ${table}`;
}

async function profile(originProfiled, { method = "GET", headers = {}, next, expect = 200 }, samples = 20) {
  const traces = [];
  let wall = 0;
  // Whatever the last load left in flight settles first.
  await sleep(1000);
  for (let i = -5; i < samples; i++) {
    const { path: p, body } = next();
    const t0 = performance.now();
    const res = await fetch(`${originProfiled}${p}`, {
      method,
      headers: { ...headers, "content-type": "application/json" },
      body,
    });
    await res.arrayBuffer();
    if (res.status !== expect) throw new Error(`profile ${method} ${p}: ${res.status}`);
    const trace = await (await fetch(`${originProfiled}/__bench/trace`)).json();
    // The first few only warm the twin up.
    if (i < 0) continue;
    wall += performance.now() - t0;
    traces.push(trace);
  }
  const per = (f) => traces.reduce((sum, t) => sum + f(t), 0) / traces.length;
  const d1 = (t) => t.filter((e) => e.kind === "d1");
  const objects = (t) => t.filter((e) => e.kind === "do");
  return {
    ms: wall / samples,
    d1: per((t) => d1(t).length),
    d1Ms: per((t) => d1(t).reduce((s, e) => s + e.ms, 0)),
    objects: per((t) => objects(t).length),
    objectsMs: per((t) => objects(t).reduce((s, e) => s + e.ms, 0)),
    steps: traces.at(-1).map(label),
    trace: traces.at(-1),
  };
}

// ---------------------------------------------------------------------------------------------
// CPU profile: V8's sampling profiler on the isolates, through workerd's inspector, under load

/** One DevTools protocol session on a workerd isolate. */
async function inspect(webSocketUrl) {
  const ws = new WebSocket(webSocketUrl);
  await new Promise((resolve, reject) => {
    ws.addEventListener("open", resolve, { once: true });
    ws.addEventListener("error", reject, { once: true });
  });
  let id = 0;
  const waiting = new Map();
  ws.addEventListener("message", (event) => {
    const message = JSON.parse(event.data);
    const pending = waiting.get(message.id);
    if (!pending) return;
    waiting.delete(message.id);
    if (message.error) pending.reject(new Error(JSON.stringify(message.error)));
    else pending.resolve(message.result);
  });
  return {
    send: (method, params = {}) =>
      new Promise((resolve, reject) => {
        waiting.set(++id, { resolve, reject });
        ws.send(JSON.stringify({ id, method, params }));
      }),
    close: () => ws.close(),
  };
}

/** CPU profiles of the named isolates while `during` runs. */
async function cpuProfiles(mf, names, during) {
  const inspector = await mf.getInspectorURL();
  const targets = await (await fetch(`http://${inspector.host}/json`)).json();
  const sessions = await Promise.all(
    names.map((name) => {
      const target = targets.find((t) => t.id === name);
      if (!target) throw new Error(`no inspector target ${name}: ${targets.map((t) => t.id).join(", ")}`);
      return inspect(target.webSocketDebuggerUrl);
    }),
  );
  for (const session of sessions) {
    await session.send("Profiler.enable");
    await session.send("Profiler.setSamplingInterval", { interval: SAMPLING_US });
    await session.send("Profiler.start");
  }
  await during();
  const profiles = await Promise.all(sessions.map((session) => session.send("Profiler.stop")));
  for (const session of sessions) session.close();
  return profiles.map((p) => p.profile);
}

/** Where each line of the bundle came from, from esbuild's `// path` section comments. */
function bundleSections(bundlePath) {
  const sections = [];
  readFileSync(bundlePath, "utf8")
    .split("\n")
    .forEach((line, i) => {
      // esbuild names each module's section; a symlinked node_modules shows up as ../../…
      const match = line.match(/^\/\/ (\S+\.(?:[cm]?js|ts))$/);
      if (!match) return;
      const file = match[1].slice(Math.max(0, match[1].search(/(?:^|\/)src\//))).replace(/^\//, "");
      const modules = match[1].lastIndexOf("node_modules/");
      const pkg = modules < 0 ? undefined : match[1].slice(modules + 13).match(/^(?:@[^/]+\/)?[^/]+/)?.[0];
      sections.push({ line: i, label: pkg ?? file });
    });
  return sections;
}

function categoryOf(frame, sections) {
  const name = frame.functionName;
  if (name === "(idle)") return "(idle)";
  if (name === "(garbage collector)") return "GC";
  if (name === "(program)" || name === "(root)") return "(runtime, outside JS)";
  if (frame.url.endsWith("index.js") || frame.url.endsWith("stratus.js")) {
    let label = "esbuild helpers";
    for (const s of sections) {
      if (s.line > frame.lineNumber) break;
      label = s.label;
    }
    return label;
  }
  if (!frame.url) return `builtin ${name || "(anonymous)"}`;
  return path.basename(frame.url);
}

/**
 * Busy share of the window and where the busy time went, by bundle module and by function. A
 * sample stands for the time since the one before, but at most `MAX_SAMPLE_US`: V8 takes no samples
 * while workerd has not entered the isolate, so a sample after such a gap would otherwise count
 * the whole gap as busy (an isolate that ran nothing read as ~100% busy before 2026-12-02).
 */
function summarize(profile, sections) {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const byCategory = new Map();
  const byFunction = new Map();
  const add = (map, key, us) => map.set(key, (map.get(key) ?? 0) + us);
  profile.samples.forEach((id, i) => {
    const frame = nodes.get(id).callFrame;
    const category = categoryOf(frame, sections);
    const us = Math.min(profile.timeDeltas[i] ?? 0, MAX_SAMPLE_US);
    add(byCategory, category, us);
    if (category !== "(idle)") add(byFunction, `${frame.functionName || "(anonymous)"} [${category}]`, us);
  });
  const total = profile.endTime - profile.startTime;
  byCategory.delete("(idle)");
  const busy = [...byCategory.values()].reduce((sum, us) => sum + us, 0);
  const ranked = (map, n) =>
    [...map]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([key, us]) => `${key} ${((100 * us) / total).toFixed(0)}%`);
  return {
    busy: (100 * busy) / total,
    top: ranked(byCategory, 6),
    functions: ranked(byFunction, 8),
  };
}

// ---------------------------------------------------------------------------------------------
// Report

/** The middle of sorted `values` (the mean of the middle two for an even count). */
const median = (values) => (values[(values.length - 1) >> 1] + values[values.length >> 1]) / 2;
const fmt = (n, digits = 1) => (n === null || n === undefined ? "-" : Number(n).toFixed(digits));

function machine() {
  let memory = `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`;
  try {
    const [header, mem] = execFileSync("free", ["-h"], { encoding: "utf8" }).split("\n");
    const names = header.trim().split(/\s+/);
    const values = mem.trim().split(/\s+/).slice(1);
    memory = names.map((name, i) => `${name} ${values[i]}`).join(", ");
  } catch {
    // `free` is not everywhere; the total from Node will do.
  }
  let cpu = os.cpus()[0]?.model ?? "unknown";
  try {
    cpu = readFileSync("/proc/cpuinfo", "utf8").match(/^model name\s*:\s*(.+)$/m)?.[1] ?? cpu;
  } catch {
    // Not Linux.
  }
  return {
    load: os
      .loadavg()
      .map((n) => n.toFixed(2))
      .join(" "),
    nproc: os.availableParallelism(),
    cpu,
    memory,
    node: process.version,
    os: `${os.type()} ${os.release()}`,
  };
}

function report({
  rows,
  logLines,
  pageRatio,
  bundle,
  profiles,
  plans,
  cpu,
  m,
  seconds,
  migrations,
  source,
  renewals,
  consumer,
}) {
  const lines = [];
  lines.push(
    `Date: ${new Date().toISOString()}  ·  code: ${source}  ·  machine: ${m.nproc} cores, ${m.cpu}; memory (free -h): ${m.memory}; Node ${m.node}; ${m.os}; load average before the run: ${m.load}`,
  );
  lines.push(
    `Load: autocannon, ${CONNECTIONS} connections, ${DURATION} s per measurement (path and baseline alternate in ${ROUNDS} rounds of ${DURATION / ROUNDS} s, after a ${WARMUP} s warm-up each; p50 is request-weighted over the rounds, p99 the worst round's; the ratio is the median of the rounds' req/s ratios, their range in brackets), 127.0.0.1 only; workerd via Miniflare direct sockets (no dev proxy). Migrations: ${migrations.join(", ")}.`,
  );
  if (rows.length > 0) {
    lines.push("");
    lines.push(
      "| path | req/s | p50 ms | p99 ms | errors | CPU µs/req (workerd + load) | baseline | baseline req/s | baseline p50 ms | baseline p99 ms | baseline errors | baseline CPU µs/req | ratio (rounds) | CPU ratio | target | goal (issue 17) |",
    );
    lines.push("|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---|");
    for (const r of rows) {
      const ratio = median(r.pairs);
      const verdict = ratio >= r.target ? "met" : "MISSED";
      const p99x = r.path.p99 / r.base.p99;
      const goal = [
        `≥ ${r.goal.ratio}: ${ratio >= r.goal.ratio ? "met" : "MISSED"}`,
        ...(r.goal.p99x
          ? [
              `p99 ≤ ${r.goal.p99x}× the baseline's: ${p99x <= r.goal.p99x ? "met" : "MISSED"} (${fmt(p99x, 2)}×)`,
            ]
          : []),
      ].join("; ");
      const errors = (e) => (e.errors ? `${e.errors} ${JSON.stringify(e.statuses)}` : "0");
      const cpu = (e) =>
        `${fmt(e.cpuUs.workerd + e.cpuUs.node, 0)} (${fmt(e.cpuUs.workerd, 0)} + ${fmt(e.cpuUs.node, 0)})`;
      const cpuRatio =
        (r.base.cpuUs.workerd + r.base.cpuUs.node) / (r.path.cpuUs.workerd + r.path.cpuUs.node);
      lines.push(
        `| ${r.name} | ${fmt(r.path.rps, 0)} | ${fmt(r.path.p50, 0)} | ${fmt(r.path.p99, 0)} | ${errors(r.path)} | ${cpu(r.path)} | ${r.baseName} | ${fmt(r.base.rps, 0)} | ${fmt(r.base.p50, 0)} | ${fmt(r.base.p99, 0)} | ${errors(r.base)} | ${cpu(r.base)} | ${fmt(ratio, 2)} (${fmt(r.pairs[0], 2)}–${fmt(r.pairs.at(-1), 2)}) | ${fmt(cpuRatio, 2)} | ≥ ${r.target}: ${verdict} | ${goal} |`,
      );
    }
    if (pageRatio)
      lines.push(
        "",
        `List page time at 100k vs 10k rows: p50 ${fmt(pageRatio.p50, 2)}×, mean ${fmt(pageRatio.mean, 2)}× (flat = 1.0; the baseline's: mean ${fmt(pageRatio.baseMean, 2)}×).`,
      );
    if (logLines) {
      const counts = [...logLines].map(
        ([route, n]) => `${route}: ${n.lines} lines for ${n.requests} timed requests`,
      );
      lines.push(
        "",
        `Per-request log lines workerd wrote during the rows (to a file: its console output is not parsed during the run; warm-ups, seeding, the single profiled requests and the profiles' load log too): ${counts.join("; ")}: ${logLinesComplete(logLines) ? "every request logged" : "MISSING LINES"}.`,
      );
    }
  }
  lines.push(
    `Bundle (wrangler deploy --dry-run): ${fmt(bundle.rawKiB)} KiB raw, ${fmt(bundle.gzipKiB)} KiB gzip (node:zlib; wrangler reports ${fmt(bundle.wranglerGzipKiB)} KiB): target ≤ 200 KB: ${bundle.gzipKiB * 1024 <= 200_000 ? "met" : "MISSED"}.`,
  );
  if (rows.length > 0) {
    lines.push("");
    lines.push(
      `CPU under the same load (V8 sampling profiler through workerd's inspector, ${PROFILE_SECONDS} s per row once every row is timed, on workerd restarted with its inspector on the same storage: the timed runs have none, as with an inspector every console.log costs more): busy share of the window of the stratus isolate (Worker + its Durable Objects) and of the D1 database's isolate; where stratus's time goes, by bundle module (self time, % of the window):`,
    );
    lines.push("");
    lines.push("| path | stratus busy | D1 busy | stratus self time by module |");
    lines.push("|---|---:|---:|---|");
    for (const [name, app, d1] of cpu) {
      lines.push(`| ${name} | ${fmt(app.busy, 0)}% | ${fmt(d1.busy, 0)}% | ${app.top.join(", ")} |`);
    }
    lines.push("");
    lines.push("Hottest functions of the stratus isolate (self time, % of the window):");
    lines.push("");
    for (const [name, app] of cpu) lines.push(`- ${name}: ${app.functions.join(", ")}`);
    lines.push("");
    lines.push("Profile (single requests, no load, to the instrumented twin; mean of 20):");
    lines.push("");
    lines.push("| path | wall ms | D1 statements | D1 ms | DO calls | DO ms | sequence (last request) |");
    lines.push("|---|---:|---:|---:|---:|---:|---|");
    for (const [name, p] of profiles) {
      lines.push(
        `| ${name} | ${fmt(p.ms)} | ${fmt(p.d1)} | ${fmt(p.d1Ms)} | ${fmt(p.objects)} | ${fmt(p.objectsMs)} | ${p.steps.join(" → ")} |`,
      );
    }
    lines.push("");
    lines.push("DO calls' time includes what the object does inside (SubscriptionObject.create pushes its");
    lines.push("D1 projection before it answers). Query plan of the list's select, at 10k and at 100k:");
    for (const [name, plan] of plans) lines.push(`- ${name}: ${plan}`);
  }
  if (renewals) {
    lines.push("");
    const purchase = rows.find((r) => r.name.startsWith("POST /v1/subscriptions/"));
    lines.push(...renewalReport(renewals, consumer, purchase?.path.rps ?? null));
  }
  lines.push("");
  lines.push(`Total bench time: ${fmt(seconds, 0)} s.`);
  return lines.join("\n");
}

// ---------------------------------------------------------------------------------------------
// Main

/** The hot paths against their baselines, on a Miniflare with the twins; the table's rows. */
async function benchRows(start, tree, bundle) {
  let mf = await start(false);
  const origin = await originOf(mf, "stratus");
  const baseline = await originOf(mf, "baseline");
  const profiled = await originOf(mf, "profiled");
  log(`stratus ${origin}, baseline ${baseline}, profiled ${profiled}`);

  const db = await mf.getD1Database("DB", "stratus");
  const migrations = await applyMigrations(db, tree);
  log(`applied ${migrations.length} migrations; seeding through the API`);
  const api = client(origin);
  const seed = await seedThroughApi(db, api);
  const partner = { "x-api-key": seed.partnerKey };
  const service = { "x-auth-token": seed.serviceToken };

  // The baseline's objects hold records of the same size as the real ones.
  const { results: records } = await db
    .prepare(
      `SELECT id, body FROM subscriptions WHERE id IN (${seed.subscriptions.map(() => "?").join(",")})`,
    )
    .bind(...seed.subscriptions)
    .all();
  const recordBody = records[0].body;
  await inParallel(records, 8, (r, i) =>
    fetch(`${baseline}/do/get-${i}`, { method: "POST", body: r.body }).then((res) => res.arrayBuffer()),
  );

  const now = Date.now();
  const allRows = projectionRows(100_000 - seed.subscriptions.length, seed.partnerId, seed.customers, now);
  const firstRows = allRows.slice(0, 10_000 - seed.subscriptions.length);
  await insertProjections(db, firstRows);
  const count = async () =>
    (
      await db
        .prepare("SELECT count(*) AS n FROM subscriptions WHERE partner_id = ?")
        .bind(seed.partnerId)
        .first()
    ).n;
  log(
    `seeded: ${seed.customers.length} customers, ${seed.subscriptions.length} bought, ${await count()} rows`,
  );

  const specs = {
    get: {
      headers: partner,
      next: cycle(seed.subscriptions.length, (i) => ({
        path: `/v1/subscriptions/${seed.subscriptions[i]}/`,
      })),
    },
    getBase: { next: cycle(records.length, (i) => ({ path: `/do/get-${i}` })) },
    list: {
      headers: partner,
      next: () => ({ path: "/v1/subscriptions/?status=active&resource=cpu,mem&limit=50" }),
    },
    listBase: { next: () => ({ path: `/d1/list?partner=${seed.partnerId}` }) },
    commissionOne: {
      method: "POST",
      headers: service,
      expect: 201,
      next: () => ({ path: "/account/v1.0/commissions", body: commission(seed.customers[0]) }),
    },
    commissionOneBase: {
      method: "POST",
      expect: 201,
      next: () => ({ path: "/do/ledger-0", body: commission(seed.customers[0]) }),
    },
    commissionSpread: {
      method: "POST",
      headers: service,
      expect: 201,
      next: cycle(100, (i) => ({ path: "/account/v1.0/commissions", body: commission(seed.customers[i]) })),
    },
    commissionSpreadBase: {
      method: "POST",
      expect: 201,
      next: cycle(100, (i) => ({ path: `/do/ledger-${i}`, body: commission(seed.customers[i]) })),
    },
    create: {
      method: "POST",
      headers: partner,
      expect: 201,
      next: cycle(10, (i) => ({
        path: "/v1/subscriptions/",
        body: JSON.stringify({
          objects: [{ customer: seed.customers[i], resource: "cpu", amount: 1, period: "1 month" }],
        }),
      })),
    },
    createBase: {
      method: "POST",
      expect: 201,
      next: cycle(Number.MAX_SAFE_INTEGER, (i) => ({ path: `/do-d1/create-${i}`, body: recordBody })),
    },
  };

  // Every path answers what it should before it is timed.
  const list = await api("GET", specs.list.next().path, { token: seed.partnerKey });
  if (list.objects.length !== 50) throw new Error(`the list answered ${list.objects.length} objects, not 50`);

  const rows = [];
  const cpu = [];
  const sections = bundleSections(bundle.bundlePath);
  const profiles = [];
  const plans = [];
  // Each row is profiled once every row is timed, on a workerd restarted with its inspector.
  const toProfile = new Map();
  // `target`: the first benchmark's; `goal`: issue 17's (a ratio, and for the purchase a p99 bound).
  const row = async (name, key, baseName, target, goal) => {
    log(`measuring ${name} against ${baseName}`);
    const [pathResult, base, pairs] = await measurePair(origin, specs[key], baseline, specs[`${key}Base`]);
    const logged = `${specs[key].method ?? "GET"} ${LOGGED_ROUTES[key]}`;
    rows.push({ name, path: pathResult, base, baseName, target, goal, pairs, logged });
    log(
      `  ${fmt(pathResult.rps, 0)} req/s vs ${fmt(base.rps, 0)} req/s, errors ${pathResult.errors}/${base.errors}`,
    );
    toProfile.set(key, name);
    return pathResult;
  };
  const listPlan = async (name) => {
    const p = await profile(profiled, specs.list);
    profiles.push([name, p]);
    const select = p.trace.find(
      (e) => e.kind === "d1" && /from "?subscriptions\b/.test(e.sql) && /limit/i.test(e.sql),
    );
    if (select) {
      const { results } = await db
        .prepare(`EXPLAIN QUERY PLAN ${select.sql}`)
        .bind(...select.params)
        .all();
      plans.push([name, results.map((r) => r.detail).join("; ")]);
    }
  };

  if (wanted("get")) {
    await row("GET /v1/subscriptions/{id}/", "get", "DO read", 0.8, { ratio: 0.9 });
    profiles.push(["GET /v1/subscriptions/{id}/", await profile(profiled, specs.get)]);
  }
  let pageRatio = null;
  if (wanted("list")) {
    const list10k = await row("GET /v1/subscriptions/ (50, 10k rows)", "list", "D1 select 50", 0.7, {
      ratio: 0.85,
    });
    const listBase10k = rows.at(-1).base;
    await listPlan("GET /v1/subscriptions/ at 10k");

    log("inserting the rest of the 100k rows");
    await insertProjections(db, allRows.slice(firstRows.length));
    log(`rows: ${await count()}`);
    const list100k = await row("GET /v1/subscriptions/ (50, 100k rows)", "list", "D1 select 50", 0.7, {
      ratio: 0.85,
    });
    const listBase100k = rows.at(-1).base;
    await listPlan("GET /v1/subscriptions/ at 100k");
    pageRatio = {
      p50: list100k.p50 / list10k.p50,
      mean: list100k.mean / list10k.mean,
      baseMean: listBase100k.mean / listBase10k.mean,
    };
  }
  if (wanted("commission")) {
    await row("POST /account/v1.0/commissions (1 holder)", "commissionOne", "DO write (1 object)", 0.7, {
      ratio: 0.9,
    });
    profiles.push(["POST commissions (1 holder)", await profile(profiled, specs.commissionOne)]);
    await row(
      "POST /account/v1.0/commissions (100 holders)",
      "commissionSpread",
      "DO write (100 objects)",
      0.7,
      { ratio: 0.9 },
    );
    profiles.push(["POST commissions (100 holders)", await profile(profiled, specs.commissionSpread)]);
  }
  if (wanted("create")) {
    await row("POST /v1/subscriptions/ (1 object)", "create", "DO write + D1 insert", 0.5, {
      ratio: 0.8,
      p99x: 2,
    });
    profiles.push(["POST /v1/subscriptions/", await profile(profiled, specs.create)]);
  }
  if (toProfile.size > 0) {
    log("profiling: the same storage on a workerd restarted with its inspector");
    mf = await start(true);
    const inspected = await originOf(mf, "stratus");
    for (const [key, name] of toProfile) {
      log(`profiling ${name} under load`);
      await load(inspected, { ...specs[key], duration: WARMUP });
      const [app, d1] = await cpuProfiles(mf, ["core:user:stratus", "d1:db"], () =>
        load(inspected, { ...specs[key], duration: PROFILE_SECONDS }),
      );
      cpu.push([name, summarize(app, sections), summarize(d1, [])]);
      if (PROFILES) {
        mkdirSync(PROFILES, { recursive: true });
        writeFileSync(path.join(PROFILES, `${key}.cpuprofile`), JSON.stringify(app));
      }
    }
  }
  return { rows, pageRatio, profiles, plans, cpu, migrations };
}

async function main() {
  const work = mkdtempSync(path.join(os.tmpdir(), "stratus-bench-"));
  const dir = path.join(work, "build");
  mkdirSync(dir);
  let mf;
  const cleanup = async () => {
    try {
      await mf?.dispose();
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  };
  for (const signal of ["SIGINT", "SIGTERM"]) {
    process.once(signal, () => {
      cleanup().finally(() => process.exit(130));
    });
  }
  // Taken before anything starts: the load average tells whether the machine was otherwise busy.
  const m = machine();
  const git = (...args) => {
    try {
      return execFileSync("git", ["-C", root, ...args], { encoding: "utf8" }).trim();
    } catch {
      return "?";
    }
  };
  const source = process.env.BENCH_REF
    ? `${process.env.BENCH_REF} (${git("rev-parse", "--short", process.env.BENCH_REF)})`
    : `work tree (HEAD ${git("rev-parse", "--short", "HEAD")}${git("status", "--porcelain", "--", "src", "migrations", "wrangler.toml") ? " + uncommitted changes" : ""})`;
  try {
    const tree = sourceTree(work);
    log(`bundling ${process.env.BENCH_REF ?? "the work tree"} with wrangler deploy --dry-run`);
    const bundle = await build(tree, dir);
    const config = wranglerConfig(tree);
    log(
      `wrangler.toml: ${Object.keys(config.bindings).join(", ")}; queues consumed: ${Object.keys(config.bindings.queueConsumers ?? {}).join(", ")}`,
    );

    let result = { rows: [], profiles: [], plans: [], cpu: [], migrations: [] };
    if (PHASES.rows) {
      const state = path.join(work, "state");
      mkdirSync(state);
      const timedLog = path.join(work, "workerd-stdout.log");
      const start = async (inspect) => {
        await mf?.dispose();
        mf = startMiniflare({
          dir,
          bundlePath: bundle.bundlePath,
          config,
          state,
          inspect,
          stdoutTo: timedLog,
        });
        await mf.ready;
        return mf;
      };
      let lines;
      try {
        result = await benchRows(start, tree, bundle);
      } finally {
        await mf?.dispose();
        mf = undefined;
        // Complete once workerd is gone; echoed even when the rows failed.
        lines = await readLog(timedLog);
      }
      result.logLines = loggedPerRoute(result.rows, lines);
    }

    let renewals = null;
    if (PHASES.renewals) {
      // A fresh workerd with the stratus Worker alone: nothing else is due at the trigger (the
      // rows' subscriptions and read-model rows would be), and its memory is the renewals' own.
      log("renewals: a fresh workerd with the stratus Worker alone");
      const state = path.join(work, "state-renewals");
      mkdirSync(state);
      const logs = renewalLog();
      mf = startMiniflare({
        dir,
        bundlePath: bundle.bundlePath,
        config,
        state,
        twins: false,
        onLog: logs.onLog,
        inspect: PROFILES !== null,
      });
      await mf.ready;
      try {
        const db = await mf.getD1Database("DB", "stratus");
        const migrations = await applyMigrations(db, tree);
        if (result.migrations.length === 0) result.migrations = migrations;
        const api = client(await originOf(mf, "stratus"));
        const seed = await seedCatalog(db, api);
        // With BENCH_PROFILES, the seeding's and the renewals' CPU profiles are kept too.
        const profiled = PROFILES
          ? async (name, during) => {
              const [app, d1] = await cpuProfiles(mf, ["core:user:stratus", "d1:db"], during);
              mkdirSync(PROFILES, { recursive: true });
              writeFileSync(path.join(PROFILES, `${name}.cpuprofile`), JSON.stringify(app));
              writeFileSync(path.join(PROFILES, `${name}-d1.cpuprofile`), JSON.stringify(d1));
            }
          : undefined;
        renewals = await benchRenewals({
          mf,
          db,
          api,
          seed,
          inParallel,
          log,
          logs,
          deadline: RUN_DEADLINE,
          profiled,
        });
        log(
          renewals.timedOut
            ? `renewals: only ${renewals.done} of ${renewals.total} after ${renewals.elapsed.toFixed(0)} s`
            : `renewals: ${renewals.done} in ${renewals.seconds.toFixed(1)} s`,
        );
      } catch (error) {
        console.error(error);
        renewals = { error: error.message };
      }
      await mf.dispose();
      mf = undefined;
    }

    const seconds = (Date.now() - startedAt) / 1000;
    const consumer = config.bindings.queueConsumers?.["stratus-renewals"];
    const text = report({ ...result, renewals, consumer, bundle, m, seconds, source });
    console.log(`\n${text}\n`);
    const out = path.join(root, "bench", ".out");
    mkdirSync(out, { recursive: true });
    writeFileSync(path.join(out, "report.md"), `${text}\n`);
    log(`report written to bench/.out/report.md; paste it into bench/RESULTS.md`);
    const failed = result.rows.filter((r) => r.path.errors > 0 || r.base.errors > 0).map((r) => r.name);
    if (result.logLines && !logLinesComplete(result.logLines)) failed.push("per-request log lines");
    if (
      renewals &&
      (renewals.error || renewals.timedOut || renewals.counts.retried > 0 || renewals.quota?.pending > 0)
    )
      failed.push("renewals");
    if (failed.length > 0) {
      console.error(`errors in: ${failed.join(", ")}`);
      process.exitCode = 1;
    }
  } finally {
    await cleanup();
  }
}

function commission(holder) {
  return JSON.stringify({
    name: "bench",
    force: false,
    auto_accept: true,
    provisions: [{ holder, source: "system", resource: "bench.vm", quantity: 1 }],
  });
}

main().then(
  () => process.exit(process.exitCode ?? 0),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
