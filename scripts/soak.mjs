// `npm run soak`: the API under load while its server is killed with SIGKILL every few seconds,
// then the books checked over the API. docs/RELIABILITY.md explains it and records a run.
//
// 1. Snapshots the work tree, applies the D1 migrations into a fresh persistence directory and
//    starts `wrangler dev` on it (scripts/soak-server.mjs) with RECOVERY_AFTER_SECONDS shortened,
//    so recovery happens within the run.
// 2. Sets up through the API: an `unlimited` partner and its key, the catalog, a few customers
//    with limits on the `stratus.*` resources (some tight, so purchases meet 409 quota-exceeded) and user tokens.
// 3. Load for SOAK_SECONDS from SOAK_CONCURRENCY lanes: purchases (some `Prefer: respond-async`),
//    amount changes, extensions, CaaS start/stop and cancellations. Most writes carry an
//    Idempotency-Key and are retried, as the draft says a client does, with the same key and body
//    until they get a final answer; some carry none. Meanwhile the server's process group is
//    killed every SOAK_KILL_EVERY_SECONDS and started again on the same state.
// 4. Then: no more kills; past the recovery bound the cron runs (/__scheduled), every keyed write is
//    retried until it has a final answer, operations are polled until none is left queued or
//    running, each final answer is replayed once, and the invariants are checked over the API.
//
// Environment: SOAK_SECONDS (load phase, default 120), SOAK_KILL_EVERY_SECONDS (seconds of uptime
// between kills, "5-8" jittered by default; one number for a fixed interval), SOAK_CONCURRENCY
// (lanes, default 8), SOAK_RECOVERY_SECONDS (the server's RECOVERY_AFTER_SECONDS, default 10),
// SOAK_CUSTOMERS (default 6), SOAK_SEED (the workload's random choices), SOAK_KEEP=1 (keep the
// state directory even when nothing was violated), SOAK_RECHECK=<kept directory> (check a kept
// run's books again, on its own state, without load). Exit 0 when no invariant was violated, 1 when
// one was, 2 when the soak itself could not run. Everything listens on and targets 127.0.0.1.
import { execFileSync } from "node:child_process";
import { createHash, randomUUID } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { demo } from "./demo-data.mjs";
import { credentialInsert, formatToken, inParallel, newSecret } from "./lib.mjs";
import { DevServer, freePort, snapshotTree, wrangler } from "./soak-server.mjs";

const root = path.resolve(import.meta.dirname, "..");
const envNumber = (name, fallback) => {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name} must be a number, not "${raw}"`);
  return value;
};
const envRange = (name, fallback) => {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const parts = raw.split("-").map(Number);
  if (parts.length > 2 || parts.some((n) => !Number.isFinite(n) || n <= 0) || parts[0] > parts.at(-1))
    throw new Error(`${name} must be seconds ("6") or a range ("5-8"), not "${raw}"`);
  return [parts[0], parts.at(-1)];
};

const CONFIG = {
  loadSeconds: envNumber("SOAK_SECONDS", 120),
  killEvery: envRange("SOAK_KILL_EVERY_SECONDS", [5, 8]),
  concurrency: Math.max(1, Math.floor(envNumber("SOAK_CONCURRENCY", 8))),
  recoverySeconds: envNumber("SOAK_RECOVERY_SECONDS", 10),
  customers: Math.max(2, Math.floor(envNumber("SOAK_CUSTOMERS", 6))),
  seed: Math.floor(envNumber("SOAK_SEED", Date.now() % 2 ** 31)),
  keep: process.env.SOAK_KEEP === "1",
};
// Bounds of the phases after the load (seconds).
const BOUNDS = {
  /** Past the recovery bound before the first cron run. */
  recoveryMargin: 15,
  /** For every keyed write to get a final answer (a key a dead request held stays locked 60 s). */
  answers: 180,
  /** For every operation to finish and every pending quota to be settled. */
  settle: 120,
  /** The whole run, whatever happens: past it the server is killed and the soak exits 2. */
  total: 0,
};
BOUNDS.total = CONFIG.loadSeconds + BOUNDS.recoveryMargin + CONFIG.recoverySeconds + BOUNDS.answers + 400;

const startedAt = Date.now();
const elapsed = () => ((Date.now() - startedAt) / 1000).toFixed(0);
const log = (...args) => console.error(`[soak ${elapsed()}s]`, ...args);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// A small seeded generator (mulberry32): the same SOAK_SEED makes the same choices, though the
// kills land elsewhere in them on every run.
let rngState = CONFIG.seed >>> 0;
function random() {
  rngState = (rngState + 0x6d2b79f5) >>> 0;
  let t = rngState;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const chance = (p) => random() < p;
const pick = (items) => items[Math.floor(random() * items.length)];
const between = (low, high) => low + Math.floor(random() * (high - low + 1));

// ---------------------------------------------------------------------------------------------
// HTTP, counted

const stats = {
  phase: "setup",
  sent: 0,
  byPhase: {},
  byStatus: {},
  connectionErrors: {},
  retries: 0,
  kills: 0,
  restarts: 0,
  processesKilled: 0,
  downtimeMs: [],
  crons: 0,
};

function count(kind, key) {
  stats.byPhase[stats.phase] ??= { sent: 0, byStatus: {}, connectionErrors: 0 };
  const phase = stats.byPhase[stats.phase];
  if (kind === "sent") {
    stats.sent++;
    phase.sent++;
  } else if (kind === "status") {
    stats.byStatus[key] = (stats.byStatus[key] ?? 0) + 1;
    phase.byStatus[key] = (phase.byStatus[key] ?? 0) + 1;
  } else {
    stats.connectionErrors[key] = (stats.connectionErrors[key] ?? 0) + 1;
    phase.connectionErrors++;
  }
}

let base = "";

/**
 * One request. Resolves `{ status, headers, text, json }`, or `{ status: 0, error }` when no
 * answer came (refused, reset, timed out): during a kill that is expected and counted.
 */
async function http(
  method,
  route,
  { token, header = "x-api-key", body, headers = {}, timeoutMs = 20_000 } = {},
) {
  count("sent");
  try {
    const res = await fetch(`${base}${route}`, {
      method,
      headers: {
        ...(token ? { [header]: token } : {}),
        ...(body !== undefined ? { "content-type": "application/json" } : {}),
        ...headers,
      },
      body,
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    count("status", res.status);
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      // Not JSON: kept as text.
    }
    return { status: res.status, headers: res.headers, text, json };
  } catch (error) {
    const code =
      error?.name === "TimeoutError"
        ? "timeout"
        : (error?.cause?.code ?? error?.code ?? error?.cause?.message ?? String(error));
    count("error", code);
    return { status: 0, error: code };
  }
}

/** A read that must succeed (setup and checks): retried on connection errors and 5xx, bounded. */
async function must(method, route, options = {}, expect = [200, 201]) {
  let last;
  for (let attempt = 0; attempt < 20; attempt++) {
    last = await http(method, route, options);
    if (expect.includes(last.status)) return last;
    if (last.status !== 0 && last.status < 500) break;
    await sleep(500);
  }
  throw new Error(`${method} ${route}: ${last.status || last.error} ${last.text ?? ""}`.trim());
}

/** Every object of a cursor-paginated list. */
async function listAll(route, token) {
  const objects = [];
  let cursor = null;
  for (let page = 0; page < 10_000; page++) {
    const sep = route.includes("?") ? "&" : "?";
    const url = `${route}${sep}limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
    const { json } = await must("GET", url, { token });
    objects.push(...json.objects);
    cursor = json.meta?.next_cursor ?? null;
    if (!cursor) return objects;
  }
  throw new Error(`${route}: more than 10,000 pages`);
}

// ---------------------------------------------------------------------------------------------
// Setup

const TIMED = ["cpu", "mem", "dssd"];
const CLOUD = "cumulus";
const PERIODS = ["1 day", "1 week", "1 month"];

async function setup(server, tree, persistTo) {
  // The operator key is stored as `npm start` stores its own: its hash, in the local D1.
  const operator = { id: randomUUID(), secret: newSecret() };
  const sql = await credentialInsert({
    ...operator,
    role: "operator",
    partnerId: null,
    subjectId: null,
    label: "soak",
  });
  const sqlFile = path.join(persistTo, "..", "operator.sql");
  writeFileSync(sqlFile, `${sql}\n`);
  await wrangler(tree, ["d1", "execute", "DB", "--local", "--persist-to", persistTo, `--file=${sqlFile}`]);
  await server.start();
  const op = formatToken("operator", operator.id, operator.secret);

  const partner = (
    await must("POST", "/v1/partners", {
      token: op,
      body: JSON.stringify({ name: "Soak Partner", rate_limit: "unlimited" }),
    })
  ).json;
  if (partner.rate_limit !== "unlimited") throw new Error(`partner tier is ${partner.rate_limit}`);
  const key = (
    await must("POST", `/v1/partners/${partner.id}/api-keys`, {
      token: op,
      body: JSON.stringify({ label: "soak" }),
    })
  ).json.token;

  // The demo catalog's stratus resources and products (none syndicated: nothing waits on a vendor).
  for (const { name, ...resource } of demo.resources.filter((r) => r.service === "stratus")) {
    await must("PUT", `/v1/resources/${name}`, { token: op, body: JSON.stringify(resource) });
  }
  const products = [];
  for (const { id, ...product } of demo.products) {
    await must("PUT", `/v1/products/${id}`, {
      token: op,
      body: JSON.stringify({ ...product, currency: "EUR", quota_resource: `stratus.${id}` }),
    });
    products.push({ id, kind: product.kind, resource: `stratus.${id}` });
  }
  if (!products.some((p) => p.id === CLOUD && p.kind === "caas")) throw new Error(`no CaaS product ${CLOUD}`);

  // Customers: the first third with tight limits (purchases meet 409 quota-exceeded), the others with room.
  const customers = [];
  for (let i = 0; i < CONFIG.customers; i++) {
    const c = (
      await must("POST", "/v1/customers", {
        token: key,
        body: JSON.stringify({ name: `Soak Customer ${i}`, email: `soak${i}@example.org` }),
      })
    ).json;
    const token = (await must("POST", `/v1/customers/${c.id}/tokens`, { token: key, body: "{}" })).json.token;
    const tight = i < Math.max(1, Math.floor(CONFIG.customers / 3));
    for (const product of products) {
      const limit = tight
        ? product.kind === "timed"
          ? 12
          : 2
        : product.kind === "timed"
          ? 1_000_000
          : 1_000;
      await must("PUT", `/v1/customers/${c.id}/quotas`, {
        token: op,
        body: JSON.stringify({ source: "system", resource: product.resource, limit }),
      });
    }
    customers.push({ id: c.id, token, tight });
  }
  return { operatorKey: op, partnerId: partner.id, partnerKey: key, customers, products };
}

// ---------------------------------------------------------------------------------------------
// The workload

/** What the client knows of each subscription, from the answers it got: targets for later writes. */
const known = new Map();
/** Every write with an Idempotency-Key, by key, in order. */
const keyed = new Map();
/** Writes without a key: their outcome, or `lost` (no answer, or a 5xx). */
const unkeyed = [];
/** Operations the client was told about (202), by opRef. */
const operations = new Map();
const anomalies = [];
let keySerial = 0;
const runId = randomUUID().slice(0, 8);

function learn(sub) {
  if (!sub?.id) return;
  known.set(sub.id, {
    id: sub.id,
    customer: sub.customer,
    product: sub.product,
    amount: sub.amount,
    ended: sub.ended_at !== null,
    runState: sub.run_state,
  });
}

/** The subscriptions an answer names: a purchase's objects, or the one an update or action answers. */
function named(status, json) {
  if (!json || status < 200 || status >= 300 || status === 202) return [];
  if (Array.isArray(json.objects)) return json.objects.map((o) => o.id);
  return json.id ? [json.id] : [];
}

function absorb(status, json) {
  if (status < 200 || status >= 300 || status === 202 || !json) return;
  if (Array.isArray(json.objects)) for (const o of json.objects) learn(o);
  else learn(json);
}

/** A 409 that means "the first request with this key is still running (or just died)": not an answer. */
const keyBusy = (res) =>
  res.status === 409 && res.headers.get("idempotent-replayed") === null && /Idempotency-Key/.test(res.text);

/** Not an answer: the request is sent again, same key and body, once the server is back. */
const unanswered = (res) => res.status === 0 || res.status >= 500 || res.status === 429 || keyBusy(res);

function writeRequest({ kind, product, method, route, body, async: asAsync, customer, withKey }) {
  return {
    key: withKey ? `soak-${runId}-${++keySerial}` : null,
    kind,
    product,
    method,
    route,
    body,
    async: asAsync,
    customer,
    attempts: 0,
    busy: 0,
    outcomes: [],
    final: null,
    nextAt: 0,
    inFlight: false,
  };
}

function headersOf(w) {
  return {
    ...(w.key ? { "idempotency-key": w.key } : {}),
    ...(w.async ? { prefer: "respond-async" } : {}),
  };
}

async function send(w, partnerKey) {
  w.inFlight = true;
  if (w.attempts > 0) stats.retries++;
  w.attempts++;
  const res = await http(w.method, w.route, { token: partnerKey, body: w.body, headers: headersOf(w) });
  w.inFlight = false;
  w.outcomes.push(res.status || res.error);
  if (w.key === null) {
    const lost = res.status === 0 || res.status >= 500;
    unkeyed.push({ ...w, status: res.status, lost, named: named(res.status, res.json) });
    absorb(res.status, res.json);
    return;
  }
  if (unanswered(res)) {
    if (keyBusy(res)) w.busy++;
    if (res.status === 429) anomalies.push(`429 for key ${w.key} (the partner is unlimited)`);
    // Back off: 1, 2, 4, 8 s; a key held by a dead request frees itself after 60 s.
    w.nextAt = Date.now() + Math.min(8_000, 1_000 * 2 ** Math.min(3, w.attempts - 1)) * (0.75 + random() / 2);
    return;
  }
  if (res.status === 422) anomalies.push(`422 for key ${w.key}: the same request was taken for another`);
  w.final = {
    status: res.status,
    text: res.text,
    replayed: res.headers.get("idempotent-replayed") === "true",
    named: named(res.status, res.json),
  };
  absorb(res.status, res.json);
  if (res.status === 202) {
    const opRef = res.json?.opRef;
    if (!opRef) anomalies.push(`202 without an opRef for key ${w.key}`);
    else if (!operations.has(opRef))
      operations.set(opRef, { opRef, key: w.key, final: null, polledAt: 0, polls: [] });
    w.final.opRef = opRef;
  }
}

async function poll(op, partnerKey, { acceptFailure = false } = {}) {
  op.polledAt = Date.now();
  const res = await http("GET", `/v1/operations/${op.opRef}`, { token: partnerKey });
  op.polls.push(res.status || res.error);
  if (res.status === 0 || res.status === 202) return;
  // A 500 is either the operation given up (its final answer) or this read failing: it is taken
  // as final only at the end, when it keeps answering it.
  if (res.status >= 500 && !acceptFailure) return;
  op.final = { status: res.status, text: res.text, named: named(res.status, res.json) };
  absorb(res.status, res.json);
}

function nextWrite(ctx) {
  const customer = pick(ctx.customers);
  const live = [...known.values()].filter((s) => !s.ended && s.customer === customer.id);
  const timed = live.filter((s) => TIMED.includes(s.product));
  const clouds = live.filter((s) => s.product === CLOUD);
  const roll = random();
  const keyedWrite = (p) => chance(p);
  if (roll < 0.34 || live.length === 0) {
    const objects =
      chance(0.1) || (clouds.length === 0 && chance(0.3))
        ? [{ customer: customer.id, resource: CLOUD, amount: 1 }]
        : Array.from({ length: between(1, 2) }, () => ({
            customer: customer.id,
            resource: pick(TIMED),
            amount: between(1, 4),
            period: pick(PERIODS),
          }));
    const withKey = keyedWrite(0.9);
    return writeRequest({
      kind: "purchase",
      method: "POST",
      route: "/v1/subscriptions/",
      body: JSON.stringify({ objects }),
      async: withKey && chance(0.25),
      customer: customer.id,
      withKey,
    });
  }
  if (roll < 0.54 && timed.length > 0) {
    const s = pick(timed);
    const withKey = keyedWrite(0.85);
    return writeRequest({
      kind: "update",
      method: "PATCH",
      route: `/v1/subscriptions/${s.id}/`,
      body: JSON.stringify({ amount: between(1, 5) }),
      async: withKey && chance(0.2),
      customer: customer.id,
      withKey,
    });
  }
  if (roll < 0.64 && timed.length > 0) {
    const s = pick(timed);
    return writeRequest({
      kind: "extend",
      product: s.product,
      method: "POST",
      route: `/v1/subscriptions/${s.id}/action/?do=extend`,
      body: chance(0.5) ? "{}" : JSON.stringify({ period: pick(PERIODS) }),
      async: chance(0.2),
      customer: customer.id,
      withKey: true,
    });
  }
  if (roll < 0.76 && clouds.length > 0) {
    const s = pick(clouds);
    const action = s.runState === "running" ? "stop" : "start";
    const withKey = keyedWrite(0.85);
    return writeRequest({
      kind: "run",
      method: "POST",
      route: `/v1/subscriptions/${s.id}/action/?do=${action}`,
      body: "{}",
      async: withKey && chance(0.2),
      customer: customer.id,
      withKey,
    });
  }
  const s = pick(live);
  const withKey = keyedWrite(0.85);
  return writeRequest({
    kind: "cancel",
    method: "DELETE",
    route: `/v1/subscriptions/${s.id}/`,
    body: undefined,
    async: withKey && chance(0.2),
    customer: customer.id,
    withKey,
  });
}

/** Keyed writes still without a final answer whose retry is due. */
function dueRetry(now) {
  for (const w of keyed.values()) if (!w.final && !w.inFlight && w.nextAt <= now) return w;
  return null;
}

async function lane(ctx, until) {
  while (Date.now() < until) {
    const now = Date.now();
    const retry = dueRetry(now);
    if (retry) {
      await send(retry, ctx.partnerKey);
    } else if (chance(0.08)) {
      const open = [...operations.values()].filter((o) => !o.final && now - o.polledAt > 2_000);
      if (open.length > 0) await poll(pick(open), ctx.partnerKey);
    } else if (chance(0.05)) {
      const c = pick(ctx.customers);
      await http("GET", "/account/v1.0/quotas", { token: c.token, header: "x-auth-token" });
    } else {
      const w = nextWrite(ctx);
      if (w.key) keyed.set(w.key, w);
      await send(w, ctx.partnerKey);
      // While the server is down, a lane does not spin on refused connections.
      if (typeof w.outcomes.at(-1) === "string") await sleep(200);
    }
  }
}

async function killer(server, until) {
  const [low, high] = CONFIG.killEvery;
  while (true) {
    const wait = (low + random() * (high - low)) * 1000;
    if (Date.now() + wait >= until) return;
    await sleep(wait);
    const down = Date.now();
    stats.processesKilled += await server.kill();
    stats.kills++;
    log(`killed the server's process group (kill ${stats.kills}); ${keyedOpen()} keyed writes unanswered`);
    await sleep(300 + random() * 700);
    await server.start();
    stats.restarts++;
    stats.downtimeMs.push(Date.now() - down);
  }
}

const keyedOpen = () => [...keyed.values()].filter((w) => !w.final).length;

async function cron() {
  const res = await http("GET", `/__scheduled?cron=${encodeURIComponent("*/5 * * * *")}`);
  if (res.status !== 200) anomalies.push(`/__scheduled answered ${res.status || res.error}`);
  stats.crons++;
}

// ---------------------------------------------------------------------------------------------
// After the load: answers, operations, recovery

async function answerEverything(ctx, deadline) {
  while (Date.now() < deadline) {
    const open = [...keyed.values()].filter((w) => !w.final);
    if (open.length === 0) return;
    const due = open.filter((w) => !w.inFlight && w.nextAt <= Date.now());
    await inParallel(due, CONFIG.concurrency, (w) => send(w, ctx.partnerKey));
    await sleep(250);
  }
}

async function settleOperations(ctx, deadline) {
  let lastCron = Date.now();
  while (Date.now() < deadline) {
    const open = [...operations.values()].filter((o) => !o.final);
    await inParallel(open, CONFIG.concurrency, (o) => poll(o, ctx.partnerKey));
    const queued = await listAll("/v1/operations?status=queued", ctx.partnerKey);
    const running = await listAll("/v1/operations?status=running", ctx.partnerKey);
    const pending = await pendingQuota(ctx);
    const stillOpen = [...operations.values()].filter((o) => !o.final).length;
    if (stillOpen === 0 && queued.length === 0 && running.length === 0 && pending.length === 0) return true;
    if (Date.now() - lastCron > 15_000) {
      await cron();
      lastCron = Date.now();
    }
    await sleep(1_000);
  }
  // What still answers 500 is an operation that was given up.
  for (const o of operations.values()) if (!o.final) await poll(o, ctx.partnerKey, { acceptFailure: true });
  return false;
}

async function quotasOf(customer) {
  const { json } = await must("GET", "/account/v1.0/quotas", {
    token: customer.token,
    header: "x-auth-token",
  });
  return json?.system ?? {};
}

async function pendingQuota(ctx) {
  const out = [];
  for (const c of ctx.customers) {
    for (const [resource, h] of Object.entries(await quotasOf(c))) {
      if (resource.startsWith("stratus.") && h.pending !== 0) out.push({ customer: c.id, resource, ...h });
    }
  }
  return out;
}

/** Each final answer, asked again with its key: the same status and body, marked as a replay. */
async function replayAll(ctx) {
  const answered = [...keyed.values()].filter((w) => w.final);
  const mismatches = [];
  await inParallel(answered, CONFIG.concurrency, async (w) => {
    let res;
    for (let i = 0; i < 10; i++) {
      res = await http(w.method, w.route, { token: ctx.partnerKey, body: w.body, headers: headersOf(w) });
      if (res.status !== 0 && res.status < 500) break;
      await sleep(500);
    }
    const same =
      res.status === w.final.status &&
      res.text === w.final.text &&
      res.headers?.get("idempotent-replayed") === "true";
    if (!same) {
      mismatches.push({
        key: w.key,
        request: `${w.method} ${w.route}`,
        first: `${w.final.status} ${w.final.text.slice(0, 300)}`,
        replay: `${res.status || res.error} replayed=${res.headers?.get("idempotent-replayed")} ${(res.text ?? "").slice(0, 300)}`,
      });
    }
  });
  return { replayed: answered.length, mismatches };
}

// ---------------------------------------------------------------------------------------------
// The invariants, over the API only

async function checkBooks(ctx) {
  const violations = [];
  const violate = (what, detail) => violations.push({ what, ...detail });
  const token = ctx.partnerKey;

  // Every subscription the API shows: the list (status=all), the orders' lines, and every id an
  // answer named, each read from its object.
  const listed = await listAll("/v1/subscriptions/?status=all", token);
  const orders = await listAll("/v1/orders", token);
  const ordersOf = new Map();
  for (const order of orders) {
    for (const line of order.lines) {
      ordersOf.set(line.subscription, [...(ordersOf.get(line.subscription) ?? []), order]);
    }
  }
  const namedBy = new Map();
  const name = (id, by) => namedBy.set(id, [...(namedBy.get(id) ?? []), by]);
  for (const w of keyed.values()) {
    for (const id of w.final?.named ?? []) name(id, { key: w.key, kind: w.kind, status: w.final.status });
    const op = w.final?.opRef ? operations.get(w.final.opRef) : null;
    for (const id of op?.final?.named ?? [])
      name(id, { key: w.key, opRef: op.opRef, kind: w.kind, status: op.final.status });
  }
  for (const w of unkeyed) for (const id of w.named) name(id, { key: null, kind: w.kind, status: w.status });
  const ids = new Set([...listed.map((s) => s.id), ...ordersOf.keys(), ...namedBy.keys()]);
  const subs = new Map();
  await inParallel([...ids], CONFIG.concurrency, async (id) => {
    const res = await must("GET", `/v1/subscriptions/${id}/`, { token }, [200, 404]);
    if (res.status === 404) {
      const where = [
        listed.some((s) => s.id === id) ? "listed" : null,
        ordersOf.has(id) ? `on order ${ordersOf.get(id)[0].id}` : null,
        namedBy.has(id) ? `named by ${JSON.stringify(namedBy.get(id))}` : null,
      ].filter(Boolean);
      violate("a subscription the API names does not exist", { subscription: id, where: where.join(", ") });
    } else subs.set(id, res.json);
  });
  const listedIds = new Set(listed.map((s) => s.id));
  for (const id of subs.keys()) {
    if (!listedIds.has(id))
      violate("a subscription is missing from GET /v1/subscriptions/?status=all", { subscription: id });
  }

  // Each subscription on exactly one order, in the state that matches it (a purchase undone before
  // it wrote its orders has none).
  for (const [id, s] of subs) {
    const on = ordersOf.get(id) ?? [];
    if (s.end_reason === "failed") {
      if (on.length > 1)
        violate("a failed subscription is on several orders", {
          subscription: id,
          orders: on.map((o) => o.id),
        });
      for (const o of on)
        if (o.state !== "failed")
          violate("a failed subscription's order is not failed", {
            subscription: id,
            order: o.id,
            state: o.state,
          });
    } else {
      if (on.length !== 1)
        violate("a subscription is not on exactly one order", {
          subscription: id,
          orders: on.map((o) => o.id),
        });
      for (const o of on)
        if (o.state !== "completed")
          violate("a bought subscription's order is not completed", {
            subscription: id,
            order: o.id,
            state: o.state,
          });
    }
    for (const o of on)
      if (o.buyer !== s.customer)
        violate("an order's buyer is not its subscription's customer", { subscription: id, order: o.id });
  }
  for (const o of orders) if (o.state === "pending") violate("an order is left pending", { order: o.id });

  // Quota: usage = Σ over live chains of each chain's amount, once (README, "Quota held once per
  // chain": a subscription with its extensions and renewals holds its amount once while any of
  // its terms has not ended), nothing pending, never over the limit.
  const rootOf = (s) => {
    let at = s;
    for (let hops = 0; at.extends && subs.has(at.extends) && hops < 10_000; hops++) at = subs.get(at.extends);
    return at.id;
  };
  const liveChains = new Map();
  for (const s of subs.values()) if (s.ended_at === null) liveChains.set(rootOf(s), s);
  const held = new Map();
  for (const s of liveChains.values()) {
    const k = `${s.customer} stratus.${s.product}`;
    held.set(k, (held.get(k) ?? 0) + s.amount);
  }
  const quota = {};
  for (const c of ctx.customers) {
    const system = await quotasOf(c);
    for (const p of ctx.products) {
      const h = system[p.resource];
      const want = held.get(`${c.id} ${p.resource}`) ?? 0;
      if (!h) {
        violate("a holding is missing", { customer: c.id, resource: p.resource });
        continue;
      }
      if (want > 0 || h.usage > 0) quota[`${c.id.slice(-4)} ${p.resource}`] = `${h.usage}/${h.limit}`;
      if (h.pending !== 0) violate("quota left pending", { customer: c.id, resource: p.resource, ...h });
      if (h.usage !== want)
        violate("usage is not the sum of the live chains' amounts", {
          customer: c.id,
          resource: p.resource,
          usage: h.usage,
          live_chains: want,
        });
      if (h.usage > h.limit) violate("usage above the limit", { customer: c.id, resource: p.resource, ...h });
    }
  }

  // No purchase bought twice: every subscription is one a final answer names (the purchase's or
  // extension's own answer, or its operation's), named by one request only; what no answer names
  // can only be the work of a write without a key that got no answer.
  for (const [id, by] of namedBy) {
    const creators = by.filter((b) => b.kind === "purchase" || b.kind === "extend");
    const creatorKeys = new Set(creators.map((b) => b.key ?? "unkeyed"));
    if (creatorKeys.size > 1) violate("two purchases name the same subscription", { subscription: id, by });
    const s = subs.get(id);
    if (s && creators.length > 0 && s.end_reason === "failed")
      violate("an answer says bought, the subscription failed", { subscription: id, by: creators });
  }
  // What no answer names can only be (a) what a write answered 4xx left of an attempt it gave up
  // (failed subscriptions on failed orders: "nothing was bought"), or (b) the work of a write
  // without a key that got no answer. Each such write accounts for one order's subscriptions.
  const offeredBy = (w) =>
    w.kind === "extend"
      ? [`${w.product}:*`]
      : JSON.parse(w.body).objects.map((o) => `${o.resource}:${o.amount}`);
  const answerOf = (w) => (w.final?.opRef ? operations.get(w.final.opRef)?.final : w.final);
  const refused = [...keyed.values()]
    .filter((w) => (w.kind === "purchase" || w.kind === "extend") && answerOf(w))
    .filter((w) => answerOf(w).status >= 400 && answerOf(w).status < 500)
    .map((w) => ({ w, used: false }));
  const lost = unkeyed.filter((w) => w.lost && w.kind === "purchase").map((w) => ({ w, used: false }));
  const fits = (w, group) => {
    if (w.customer !== group[0].customer) return false;
    if (group.some((s) => (s.extends !== null) !== (w.kind === "extend"))) return false;
    const offered = offeredBy(w);
    return group.every((s) => {
      const i = offered.findIndex((x) => x === `${s.product}:${s.amount}` || x === `${s.product}:*`);
      if (i < 0) return false;
      offered.splice(i, 1);
      return true;
    });
  };
  const unnamed = [...subs.values()].filter(
    (s) => !(namedBy.get(s.id) ?? []).some((b) => b.kind === "purchase" || b.kind === "extend"),
  );
  const byOrder = new Map();
  for (const s of unnamed) byOrder.set(s.order, [...(byOrder.get(s.order) ?? []), s]);
  const accounted = { undoneOfRefused: 0, ofLostUnkeyed: 0 };
  // An extension is first matched to the extend aimed at the subscription it extends.
  const aimedAt = (r, group) =>
    r.w.kind === "extend" && group[0].extends !== null && r.w.route.includes(group[0].extends);
  const candidatesFor = (pool, group) =>
    pool
      .filter((r) => !r.used && fits(r.w, group))
      .sort((a, b) => Number(aimedAt(b, group)) - Number(aimedAt(a, group)));
  const describe = (group) =>
    group.map((s) => ({
      id: s.id,
      customer: s.customer,
      product: s.product,
      amount: s.amount,
      extends: s.extends,
      status: s.status,
      end_reason: s.end_reason,
      created_at: s.created_at,
    }));
  for (const [order, group] of byOrder) {
    const undone = group.every((s) => s.end_reason === "failed");
    const byRefused = undone ? candidatesFor(refused, group)[0] : null;
    const byLost = byRefused ? null : candidatesFor(lost, group)[0];
    const match = byRefused ?? byLost;
    if (match) {
      match.used = true;
      if (byRefused) accounted.undoneOfRefused += group.length;
      else accounted.ofLostUnkeyed += group.length;
      continue;
    }
    const refusedYetMade = candidatesFor(refused, group)[0];
    if (refusedYetMade) {
      // The likeliest author: a keyed write whose final answer says it made nothing.
      refusedYetMade.used = true;
      const w = refusedYetMade.w;
      violate("a write's final answer is a 4xx, yet the subscription it made was bought", {
        key: w.key,
        request: `${w.method} ${w.route}${w.async ? " (Prefer: respond-async)" : ""} ${w.body ?? ""}`.trim(),
        opRef: w.final.opRef,
        answer: `${answerOf(w).status} ${answerOf(w).text.slice(0, 200)}`,
        order,
        subscriptions: describe(group),
      });
      continue;
    }
    violate("a subscription no answer accounts for", { order, subscriptions: describe(group) });
  }

  // Answers: every keyed write has one; every operation finished.
  for (const w of keyed.values()) {
    if (!w.final)
      violate("a keyed write never got a final answer", {
        key: w.key,
        request: `${w.method} ${w.route}`,
        outcomes: w.outcomes,
      });
  }
  for (const o of operations.values()) {
    if (!o.final)
      violate("an operation never finished", { opRef: o.opRef, key: o.key, polls: o.polls.slice(-5) });
    else if (o.final.status >= 500)
      anomalies.push(
        `operation ${o.opRef} (key ${o.key}) failed with ${o.final.status}: ${o.final.text.slice(0, 200)}`,
      );
  }
  for (const status of ["queued", "running"]) {
    for (const o of await listAll(`/v1/operations?status=${status}`, token))
      violate(`an operation is left ${status}`, { opRef: o.opRef, kind: o.kind, updated_at: o.updated_at });
  }

  const statusCount = {};
  for (const s of subs.values()) {
    const k = s.ended_at === null ? s.status : s.end_reason;
    statusCount[k] = (statusCount[k] ?? 0) + 1;
  }
  return {
    violations,
    figures: {
      subscriptions: subs.size,
      subscriptionsBy: statusCount,
      orders: orders.length,
      unnamedUndoneOfRefusedWrites: accounted.undoneOfRefused,
      unnamedOfLostUnkeyedPurchases: accounted.ofLostUnkeyed,
      givenUp: [...keyed.values()].filter((w) => /given up/.test(answerOf(w)?.text ?? "")).length,
      quota,
    },
  };
}

// ---------------------------------------------------------------------------------------------
// What the server logged: its recoveries, its cron runs, its errors

function serverLog(file) {
  const out = {
    recoveries: {},
    stalledRequeued: 0,
    stalledGivenUp: 0,
    overdueAbandoned: 0,
    errors: 0,
    errorSamples: [],
  };
  let text = "";
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return out;
  }
  for (const line of text.split("\n")) {
    if (line.startsWith("{")) {
      try {
        const entry = JSON.parse(line);
        if (entry.recovery) out.recoveries[entry.recovery] = (out.recoveries[entry.recovery] ?? 0) + 1;
        if (entry.cron) {
          out.stalledRequeued += entry.stalledOperations?.requeued ?? 0;
          out.stalledGivenUp += entry.stalledOperations?.givenUp ?? 0;
          out.overdueAbandoned += entry.overduePurchasesAbandoned ?? 0;
        }
        continue;
      } catch {
        // Not one of the Worker's JSON lines.
      }
    }
    if (/\b(ERROR|Uncaught|Error:)|✘/.test(line)) {
      out.errors++;
      if (out.errorSamples.length < 5) out.errorSamples.push(line.slice(0, 300));
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Report

function tally(values) {
  const out = {};
  for (const v of values) out[v] = (out[v] ?? 0) + 1;
  return out;
}

function summary(report) {
  const s = report.stats;
  const classes = {};
  for (const [status, n] of Object.entries(s.byStatus))
    classes[`${String(status)[0]}xx`] = (classes[`${String(status)[0]}xx`] ?? 0) + n;
  const connectionErrors = Object.values(s.connectionErrors).reduce((a, b) => a + b, 0);
  const refused = s.connectionErrors.ECONNREFUSED ?? 0;
  const down = s.downtimeMs.length ? s.downtimeMs.reduce((a, b) => a + b, 0) / s.downtimeMs.length / 1000 : 0;
  const lines = [
    "",
    `stratus soak: ${report.result}`,
    `  command: ${report.command}`,
    `  source: ${report.source}`,
    `  load ${CONFIG.loadSeconds} s, ${CONFIG.concurrency} lanes, kill every ${CONFIG.killEvery.join("-")} s of uptime, RECOVERY_AFTER_SECONDS=${CONFIG.recoverySeconds}, ${CONFIG.customers} customers, seed ${CONFIG.seed}; whole run ${report.seconds} s`,
    `  requests sent: ${s.sent} (load phase ${s.byPhase.load?.sent ?? 0}); answered by class: ${JSON.stringify(classes)}`,
    `  answered by status: ${JSON.stringify(s.byStatus)}`,
    `  connection errors: ${connectionErrors} (${refused} refused while the server was down, ${connectionErrors - refused} cut off in flight or timed out) ${JSON.stringify(s.connectionErrors)}`,
    `  retries (same key and body): ${s.retries}`,
    `  kills: ${s.kills} (SIGKILL to the process group, ${s.processesKilled} processes in all), restarts: ${s.restarts}, mean time from kill to /healthz: ${down.toFixed(1)} s`,
    `  cron runs (/__scheduled): ${s.crons}; the server logged recoveries ${JSON.stringify(report.server.recoveries)}, stalled operations queued again ${report.server.stalledRequeued} (given up ${report.server.stalledGivenUp}), error lines ${report.server.errors}`,
    ...report.server.errorSamples.map((line) => `    | ${line}`),
    `  keyed writes: ${report.keyed.total}; final answers ${JSON.stringify(report.keyed.finalStatus)}; resumed or replayed when first answered: ${report.keyed.replayedAtFirstAnswer}; retried: ${report.keyed.retried}; met "still being processed": ${report.keyed.metBusy}`,
    `  writes without a key: ${report.unkeyed.total}; answered ${JSON.stringify(report.unkeyed.status)}; lost (no answer or 5xx): ${report.unkeyed.lost}`,
    `  operations: ${report.operations.total}; final ${JSON.stringify(report.operations.finalStatus)}`,
    `  replays of final answers: ${report.replays.replayed}, mismatched: ${report.replays.mismatches.length}`,
    `  subscriptions: ${report.books.subscriptions} ${JSON.stringify(report.books.subscriptionsBy)}; orders: ${report.books.orders}`,
    `  named by no answer: ${report.books.unnamedUndoneOfRefusedWrites} failed ones left by keyed writes answered 4xx (purchases answered 409 "given up before it could complete": ${report.books.givenUp}), ${report.books.unnamedOfLostUnkeyedPurchases} of unkeyed purchases that got no answer`,
    `  settled (no operation open, nothing pending) ${report.settled ? `${report.settleSeconds} s after the load` : "NOT within the bound"}`,
    `  violations: ${report.violations.length}`,
    ...report.violations.map((v) => `    - ${JSON.stringify(v)}`),
    ...(report.anomalies.length
      ? [`  anomalies: ${report.anomalies.length}`, ...report.anomalies.map((a) => `    - ${a}`)]
      : []),
    `  state and server log: ${report.kept ? report.dir : "(removed)"}`,
    "",
  ];
  return lines.join("\n");
}

function sourceState() {
  try {
    const head = execFileSync("git", ["-C", root, "rev-parse", "--short", "HEAD"], {
      encoding: "utf8",
    }).trim();
    const dirty = execFileSync(
      "git",
      ["-C", root, "status", "--porcelain", "--", "src", "migrations", "wrangler.toml"],
      {
        encoding: "utf8",
      },
    ).trim();
    return { head, dirty: dirty.length > 0 };
  } catch {
    return { head: "unknown", dirty: true };
  }
}

/** A hash of the snapshot's sources, so a report says exactly what ran. */
function treeHash(dir) {
  const hash = createHash("sha256");
  const walk = (d) => {
    for (const name of readdirSync(d).sort()) {
      const p = path.join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else hash.update(`${path.relative(dir, p)}\0`).update(readFileSync(p));
    }
  };
  for (const entry of ["src", "migrations"]) walk(path.join(dir, entry));
  hash.update(readFileSync(path.join(dir, "wrangler.toml")));
  return hash.digest("hex").slice(0, 12);
}

// ---------------------------------------------------------------------------------------------
// Main

let server = null;
let dir = null;

async function main() {
  dir = mkdtempSync(path.join(tmpdir(), "stratus-soak-"));
  const persistTo = path.join(dir, "state");
  const tree = snapshotTree(path.join(dir, "tree"));
  const git = sourceState();
  const source = `${git.head}${git.dirty ? " + uncommitted changes" : ""}, snapshot ${treeHash(tree)}`;
  const port = await freePort();
  server = new DevServer({
    tree,
    persistTo,
    port,
    inspectorPort: await freePort(),
    vars: { RECOVERY_AFTER_SECONDS: String(CONFIG.recoverySeconds), PUBLIC_URL: `http://127.0.0.1:${port}` },
    logFile: path.join(dir, "wrangler.log"),
  });
  base = server.base;
  let finished = false;
  const stop = async (code, why) => {
    if (finished) return;
    finished = true;
    console.error(`soak: ${why}; state and server log kept in ${dir}`);
    await server.kill().catch(() => {});
    process.exit(code);
  };
  for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => stop(130, `stopped by ${signal}`));
  const watchdog = setTimeout(
    () => stop(2, `the run passed its bound of ${BOUNDS.total} s`),
    BOUNDS.total * 1000,
  );
  watchdog.unref();

  log(`state in ${dir}; source ${source}; server ${base}; seed ${CONFIG.seed}`);
  log("applying the D1 migrations");
  await wrangler(tree, ["d1", "migrations", "apply", "DB", "--local", "--persist-to", persistTo]);
  log("starting wrangler dev and setting up through the API");
  const ctx = await setup(server, tree, persistTo);

  stats.phase = "load";
  const loadEnd = Date.now() + CONFIG.loadSeconds * 1000;
  log(
    `load for ${CONFIG.loadSeconds} s on ${CONFIG.concurrency} lanes, killing every ${CONFIG.killEvery.join("-")} s`,
  );
  const progress = setInterval(() => {
    log(
      `sent ${stats.sent}, connection errors ${Object.values(stats.connectionErrors).reduce((a, b) => a + b, 0)}, kills ${stats.kills}, keyed ${keyed.size} (${keyedOpen()} unanswered), operations ${operations.size}`,
    );
  }, 15_000);
  await Promise.all([
    killer(server, loadEnd),
    ...Array.from({ length: CONFIG.concurrency }, () => lane(ctx, loadEnd)),
  ]);
  clearInterval(progress);
  const loadDone = Date.now();

  stats.phase = "settle";
  log(
    `load over: ${stats.kills} kills; ${keyedOpen()} keyed writes unanswered; waiting past the recovery bound`,
  );
  const pastBound = Date.now() + (CONFIG.recoverySeconds + BOUNDS.recoveryMargin) * 1000;
  await answerEverything(ctx, pastBound);
  await sleep(Math.max(0, pastBound - Date.now()));
  await cron();
  await sleep(3_000);
  await cron();
  log(`answering every keyed write (${keyedOpen()} open)`);
  await answerEverything(ctx, Date.now() + BOUNDS.answers * 1000);
  log(
    `waiting for operations and pending quota (${[...operations.values()].filter((o) => !o.final).length} operations open)`,
  );
  const settled = await settleOperations(ctx, Date.now() + BOUNDS.settle * 1000);
  const settleSeconds = Math.round((Date.now() - loadDone) / 1000);

  stats.phase = "check";
  log("replaying every final answer");
  const replays = await replayAll(ctx);
  log("checking the books");
  const books = await checkBooks(ctx);
  const violations = [
    ...books.violations,
    ...replays.mismatches.map((m) => ({ what: "a replay differs from the final answer", ...m })),
  ];
  if (!settled)
    violations.push({
      what: "operations or pending quota not settled within the bound",
      seconds: BOUNDS.settle,
    });
  await server.kill();
  const logged = serverLog(path.join(dir, "wrangler.log"));

  const keyedWrites = [...keyed.values()];
  const kept = CONFIG.keep || violations.length > 0;
  const report = {
    result: violations.length === 0 ? "no violations" : `${violations.length} VIOLATIONS`,
    command: [
      ...Object.entries(process.env)
        .filter(([k]) => k.startsWith("SOAK_"))
        .map(([k, v]) => `${k}=${v}`),
      "npm run soak",
    ].join(" "),
    source,
    dir,
    kept,
    seconds: Math.round((Date.now() - startedAt) / 1000),
    config: CONFIG,
    stats,
    keyed: {
      total: keyedWrites.length,
      byKind: tally(keyedWrites.map((w) => w.kind)),
      finalStatus: tally(keyedWrites.map((w) => w.final?.status ?? "none")),
      replayedAtFirstAnswer: keyedWrites.filter((w) => w.final?.replayed).length,
      retried: keyedWrites.filter((w) => w.attempts > 1).length,
      metBusy: keyedWrites.filter((w) => w.busy > 0).length,
    },
    unkeyed: {
      total: unkeyed.length,
      status: tally(unkeyed.map((w) => w.status || "none")),
      lost: unkeyed.filter((w) => w.lost).length,
    },
    operations: {
      total: operations.size,
      finalStatus: tally([...operations.values()].map((o) => o.final?.status ?? "none")),
    },
    replays: replays,
    settled,
    settleSeconds,
    books: books.figures,
    server: logged,
    violations,
    anomalies,
  };
  writeFileSync(
    path.join(dir, "report.json"),
    JSON.stringify(
      // The run's credentials too (local to this state directory): SOAK_RECHECK uses them.
      { ...report, ctx, keyedWrites, unkeyed, operations: [...operations.values()] },
      null,
      2,
    ),
  );
  console.log(summary(report));
  if (!kept) rmSync(dir, { recursive: true, force: true });
  finished = true;
  return violations.length === 0 ? 0 : 1;
}

/**
 * SOAK_RECHECK=<directory of a kept run>: starts the server on that run's state again and checks
 * its books against the answers its report.json recorded, without any load or kill.
 */
async function recheck(from) {
  dir = path.resolve(from);
  const saved = JSON.parse(readFileSync(path.join(dir, "report.json"), "utf8"));
  if (!saved.ctx) throw new Error(`${dir}/report.json has no credentials (a run from before SOAK_RECHECK)`);
  for (const w of saved.keyedWrites) keyed.set(w.key, w);
  unkeyed.push(...saved.unkeyed);
  for (const o of saved.operations ?? []) operations.set(o.opRef, o);
  const port = await freePort();
  server = new DevServer({
    tree: path.join(dir, "tree"),
    persistTo: path.join(dir, "state"),
    port,
    inspectorPort: await freePort(),
    vars: {
      RECOVERY_AFTER_SECONDS: String(saved.config.recoverySeconds),
      PUBLIC_URL: `http://127.0.0.1:${port}`,
    },
    logFile: path.join(dir, "recheck.log"),
  });
  base = server.base;
  log(`rechecking ${dir} (${saved.source}, seed ${saved.config.seed})`);
  await server.start();
  let books;
  try {
    books = await checkBooks(saved.ctx);
  } finally {
    await server.kill();
  }
  console.log(`\nstratus soak recheck of ${dir}: ${books.violations.length} violations`);
  for (const v of books.violations) console.log(`  - ${JSON.stringify(v)}`);
  console.log(
    `  subscriptions: ${books.figures.subscriptions} ${JSON.stringify(books.figures.subscriptionsBy)}\n`,
  );
  return books.violations.length === 0 ? 0 : 1;
}

(process.env.SOAK_RECHECK ? recheck(process.env.SOAK_RECHECK) : main()).then(
  (code) => process.exit(code),
  async (error) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : error);
    await server?.kill().catch(() => {});
    if (dir) console.error(`soak: could not run; state and server log kept in ${dir}`);
    process.exit(2);
  },
);
