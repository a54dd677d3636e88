import {
  createExecutionContext,
  createMessageBatch,
  getQueueResult,
  runInDurableObject,
} from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { afterAll, afterEach, beforeAll, beforeEach, expect, type MockInstance, vi } from "vitest";
import { type RenewalMessage, renewOrExpire } from "../src/app/renewals";
import { issueCredential } from "../src/db/credentials";
import { claimDue } from "../src/db/due-terms";
import worker from "../src/index";
import { subscriptionObject, subscriptionShard } from "../src/objects/subscription-object";
import { PUSH_CHECK_AFTER_MS } from "../src/objects/unpushed-changes";
import { checkContract } from "./contract";

/**
 * Test helpers: every call goes through the Worker's own fetch handler, and every answer is
 * checked against the OpenAPI document (contract.ts).
 */

export interface CallOptions {
  /** Sent as X-Api-Key (partner family), X-Auth-Token (/account), CMW-Auth-Token (/api). */
  token?: string;
  body?: unknown;
  /** A raw body, sent as is (as `application/json` unless `headers` name a Content-Type). */
  raw?: string | Uint8Array;
  headers?: Record<string, string>;
  /** The bindings the Worker runs with (a D1 that fails, one that notes what it is asked), if not its own. */
  env?: Env;
}

export interface Reply<T = any> {
  status: number;
  headers: Headers;
  body: T;
  text: string;
}

function tokenHeader(path: string): string {
  if (path.startsWith("/account/")) return "x-auth-token";
  if (path.startsWith("/api/")) return "cmw-auth-token";
  return "x-api-key";
}

/**
 * Each call comes from its own client address (`cf-connecting-ip`, unless the test sends one, in
 * lower case): failed authentications are rate-limited per address, and the suite's many 401s
 * must not add up. The random prefix keeps test files, which share the limiter's counters, apart.
 */
const randomGroups = Array.from(crypto.getRandomValues(new Uint16Array(2)), (n) => n.toString(16));
const addressPrefix = `2001:db8:${randomGroups.join(":")}`;
let addressCount = 0;
const nextAddress = () => `${addressPrefix}::${(++addressCount).toString(16)}`;

export async function call<T = any>(
  method: string,
  path: string,
  options: CallOptions = {},
): Promise<Reply<T>> {
  const headers: Record<string, string> = { "cf-connecting-ip": nextAddress(), ...options.headers };
  if (options.token) headers[tokenHeader(path)] = options.token;
  const body = options.body !== undefined ? JSON.stringify(options.body) : options.raw;
  // A body is JSON unless the test says otherwise: anything else answers 415.
  if (body !== undefined && !Object.keys(headers).some((name) => name.toLowerCase() === "content-type")) {
    headers["content-type"] = "application/json";
  }
  const url = `http://stratus.test${path}`;
  const res = options.env
    ? await worker.fetch(new Request(url, { method, headers, body }), options.env, createExecutionContext())
    : await exports.default.fetch(url, { method, headers, body });
  const text = await res.text();
  checkContract(method, new URL(url), { status: res.status, headers: res.headers, text });
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    // Not JSON (HTML docs, empty bodies): keep the text.
  }
  return { status: res.status, headers: res.headers, body: parsed as T, text };
}

/** A schema of the OpenAPI document, its `$ref` to a named schema followed. */
export function deref(doc: any, schema: any): any {
  const name = typeof schema?.$ref === "string" ? schema.$ref.replace("#/components/schemas/", "") : null;
  return name === null ? schema : doc.components.schemas[name];
}

/** An operator credential, made the way `scripts/operator-key.mjs` makes one in production. */
export async function operatorToken(): Promise<string> {
  const credential = await issueCredential(env, { role: "operator", partnerId: null, subjectId: null });
  return credential.token;
}

export async function expectOk<T = any>(reply: Promise<Reply<T>>, status = 200): Promise<T> {
  const r = await reply;
  if (r.status !== status) throw new Error(`expected ${status}, got ${r.status}: ${r.text}`);
  return r.body;
}

let counter = 0;
export const unique = (prefix: string) => `${prefix}-${Date.now().toString(36)}-${(counter++).toString(36)}`;

export interface Tenant {
  operator: string;
  partnerId: string;
  partnerKey: string;
  serviceId: string;
  serviceName: string;
  serviceToken: string;
  customers: string[];
  userTokens: string[];
  resources: string[];
}

/**
 * A partner with one service, `customerCount` customers and a holding on each of the service's
 * resources (`<service>.vm` and `<service>.ram`) at `limit`.
 */
export async function tenant(options: { customers?: number; limit?: number } = {}): Promise<Tenant> {
  const operator = await operatorToken();
  const serviceName = unique("svc");
  const partner = await expectOk(
    call("POST", "/v1/partners", { token: operator, body: { name: unique("partner") } }),
    201,
  );
  const key = await expectOk(
    call("POST", `/v1/partners/${partner.id}/api-keys`, { token: operator, body: {} }),
    201,
  );
  const service = await expectOk(
    call("POST", "/v1/services", { token: operator, body: { partner: partner.id, name: serviceName } }),
    201,
  );
  const svcToken = await expectOk(
    call("POST", `/v1/services/${service.id}/tokens`, { token: operator, body: {} }),
    201,
  );
  const resources = [`${serviceName}.vm`, `${serviceName}.ram`];
  for (const name of resources) {
    await expectOk(
      call("PUT", `/v1/resources/${name}`, { token: operator, body: { service: serviceName, unit: null } }),
    );
  }
  const customers: string[] = [];
  const userTokens: string[] = [];
  for (let i = 0; i < (options.customers ?? 2); i++) {
    const c = await expectOk(
      call("POST", "/v1/customers", { token: key.token, body: { name: `customer ${i}` } }),
      201,
    );
    customers.push(c.id);
    const t = await expectOk(
      call("POST", `/v1/customers/${c.id}/tokens`, { token: key.token, body: {} }),
      201,
    );
    userTokens.push(t.token);
    for (const resource of resources) {
      await expectOk(
        call("PUT", `/v1/customers/${c.id}/quotas`, {
          token: operator,
          body: { source: "system", resource, limit: options.limit ?? 10 },
        }),
      );
    }
  }
  return {
    operator,
    partnerId: partner.id,
    partnerKey: key.token,
    serviceId: service.id,
    serviceName,
    serviceToken: svcToken.token,
    customers,
    userTokens,
    resources,
  };
}

/** The demo catalog's shape: one product of every kind, priced per unit and hour in EUR cents. */
export const PRODUCTS = [
  { id: "dssd", kind: "timed", unit: "GB", unit_price: "0.01", aliases: ["hdd"] },
  { id: "cpu", kind: "timed", unit: "GHz", unit_price: "0.02", aliases: [] },
  { id: "mem", kind: "timed", unit: "GB", unit_price: "0.03", aliases: [] },
  { id: "tx", kind: "depletable", unit: "GB", unit_price: "0.05", aliases: [] },
  { id: "ip", kind: "per_object", unit: "IP", unit_price: "0.10", aliases: [] },
  { id: "vlan", kind: "per_object", unit: "VLAN", unit_price: "0.20", aliases: [] },
  { id: "msft-windows", kind: "license", unit: "license", unit_price: "0.04", aliases: [] },
  { id: "cumulus", kind: "caas", unit: "cloud", unit_price: "1.00", aliases: [] },
] as const;

/** Registers the catalog (idempotently) and gives each of the tenant's customers `limit` of everything. */
export async function withCatalog(t: Tenant, limit = 1000): Promise<void> {
  for (const p of PRODUCTS) {
    await expectOk(
      call("PUT", `/v1/resources/stratus.${p.id}`, {
        token: t.operator,
        body: { service: "stratus", unit: p.unit },
      }),
    );
    await expectOk(
      call("PUT", `/v1/products/${p.id}`, {
        token: t.operator,
        body: {
          name: p.id,
          kind: p.kind,
          unit: p.unit,
          unit_price: p.unit_price,
          currency: "EUR",
          quota_resource: `stratus.${p.id}`,
          aliases: [...p.aliases],
        },
      }),
    );
  }
  for (const customer of t.customers) {
    await Promise.all(
      PRODUCTS.map((p) =>
        expectOk(
          call("PUT", `/v1/customers/${customer}/quotas`, {
            token: t.operator,
            body: { resource: `stratus.${p.id}`, limit },
          }),
        ),
      ),
    );
  }
}

/** A customer's holding of `stratus.<product>` as the quota API reports it. */
export async function usageOf(t: Tenant, customerIndex: number, product: string) {
  const q = await expectOk(call("GET", "/account/v1.0/quotas", { token: t.userTokens[customerIndex] }));
  return q.system[`stratus.${product}`] as { usage: number; limit: number; pending: number };
}

/**
 * What the alarm of subscription `id`'s shard waits for: the subscription's wake (none, or one
 * instant), when the shard's next push check is due (null: none), and when the alarm is set for.
 */
export function shardAlarmOf(id: string) {
  return runInDurableObject(subscriptionShard(env, id), async (_i, state) => {
    const sql = state.storage.sql;
    const first = sql.exec<{ at: number | null }>("SELECT MIN(at) AS at FROM unpushed").one().at;
    return {
      wakes: sql
        .exec<{ at: number }>("SELECT at FROM wakes WHERE subscription = ?", id)
        .toArray()
        .map((w) => w.at),
      check: first === null ? null : first + PUSH_CHECK_AFTER_MS,
      alarm: await state.storage.getAlarm(),
    };
  });
}

/**
 * `db` with the named methods failing as if D1 were down, in its sessions too (a request's D1 work
 * runs in one); everything else goes to `db`.
 */
export function failingD1<T extends D1Database | D1DatabaseSession>(
  db: T,
  ...methods: Array<"prepare" | "batch">
): T {
  return new Proxy(db, {
    get(target, key) {
      if ((methods as PropertyKey[]).includes(key))
        return () => {
          throw new Error("D1 is down");
        };
      if (key === "withSession")
        return (start?: string) => failingD1((target as D1Database).withSession(start), ...methods);
      const value = Reflect.get(target, key);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/**
 * A tenant whose partner is never rate-limited (a property test's many calls), with a project of
 * its own and no member yet: `project` is its id.
 */
export async function unlimitedTenantWithProject(customers: number, limit: number) {
  const t = await tenant({ customers, limit });
  await expectOk(
    call("PATCH", `/v1/partners/${t.partnerId}`, { token: t.operator, body: { rate_limit: "unlimited" } }),
  );
  const p = await expectOk(
    call("POST", "/v1/projects", { token: t.partnerKey, body: { name: unique("p") } }),
    201,
  );
  return { t, project: p.id as string };
}

/** A tenant of `customers` with the demo catalog and a limit of `limit` on each of its resources. */
export async function tenantWithCatalog(customers: number, limit?: number): Promise<Tenant> {
  const t = await tenant({ customers });
  await withCatalog(t, limit);
  return t;
}

/** HTTP Basic as CloudSigma's clients send it: the account's username and password (the API key). */
export const basic = (user: string, password: string) => ({
  authorization: `Basic ${btoa(`${user}:${password}`)}`,
});

/** A tenant of two customers with the catalog, and a customer-scoped key for the first. */
export async function customerKeyed(): Promise<Tenant & { customerKey: string }> {
  const t = await tenantWithCatalog(2);
  const key = await expectOk(
    call("POST", `/v1/customers/${t.customers[0]}/api-keys`, {
      token: t.partnerKey,
      body: { label: "account" },
    }),
    201,
  );
  if (key.role !== "account" || !key.token.startsWith("acc.")) {
    throw new Error(`a customer-scoped key is an account's: ${JSON.stringify(key)}`);
  }
  return { ...t, customerKey: key.token };
}

/**
 * `count` purchases for `customer` (an order each, `amount` of cpu for a month), and a queued
 * operation on each subscription (an `auto_renew` toggle answered 202): one row per list.
 */
export async function boughtWithOperations(t: Tenant, customer: string, count: number, amount = 1) {
  const bought: Array<{ id: string; order: string; op: string }> = [];
  for (let i = 0; i < count; i++) {
    const sub = (
      await expectOk(
        call("POST", "/v1/subscriptions/", {
          token: t.partnerKey,
          body: { objects: [{ customer, amount, period: "1 month", resource: "cpu" }] },
        }),
        201,
      )
    ).objects[0];
    const op = await call("POST", `/v1/subscriptions/${sub.id}/action/?do=auto_renew`, {
      token: t.partnerKey,
      headers: { prefer: "respond-async" },
      body: {},
    });
    if (op.status !== 202) throw new Error(`the auto_renew toggle answered ${op.status}: ${op.text}`);
    bought.push({ id: sub.id, order: sub.order, op: op.body.opRef });
  }
  return bought;
}

/** What `PUT /v1/products/{id}` sends for syndicated `product`, sold through `vendor`. */
export const syndicatedProductBody = (product: string, vendor: string, endpoint: string) => ({
  name: "CRM seats",
  kind: "license",
  unit: "seat",
  unit_price: "0.10",
  currency: "EUR",
  quota_resource: `stratus.${product}`,
  delivery: "syndicated",
  vendor,
  endpoint,
});

/**
 * A vendor of `t` with a syndicated product (a `license` unless `kind` says, its hooks at `host`),
 * and `limit` of it (10 unless said) for `t`'s first customer.
 */
export async function syndicatedProduct(
  t: Tenant,
  host = `${unique("vendor")}.example`,
  { kind = "license", unit = "seat", limit = 10 } = {},
) {
  const vendor = await expectOk(
    call("POST", "/v1/vendors", { token: t.operator, body: { name: "CRM Inc" } }),
    201,
  );
  const product = unique("crm");
  await expectOk(
    call("PUT", `/v1/resources/stratus.${product}`, { token: t.operator, body: { service: "stratus" } }),
  );
  const created = await expectOk(
    call("PUT", `/v1/products/${product}`, {
      token: t.operator,
      body: { ...syndicatedProductBody(product, vendor.id, `https://${host}/hooks`), kind, unit },
    }),
  );
  await expectOk(
    call("PUT", `/v1/customers/${t.customers[0]}/quotas`, {
      token: t.operator,
      body: { resource: `stratus.${product}`, limit },
    }),
  );
  return { product, vendorId: vendor.id as string, secret: created.signing_secret as string };
}

/**
 * A product of the test's own (`prefix`-…, sold per GB, held on `stratus.<id>`) with `limit` of it
 * for the tenant's first customer; `put` sets it again as the operator does (`PUT
 * /v1/products/{id}`), with another kind or price.
 */
export async function ownProduct(
  t: Tenant,
  { prefix = "disk", kind = "timed", unitPrice = "0.10", limit = 100 } = {},
) {
  const product = unique(prefix);
  const put = (changes: { kind?: string; unit_price?: string } = {}) =>
    expectOk(
      call("PUT", `/v1/products/${product}`, {
        token: t.operator,
        body: {
          name: product,
          kind,
          unit: "GB",
          unit_price: unitPrice,
          currency: "EUR",
          quota_resource: `stratus.${product}`,
          aliases: [],
          ...changes,
        },
      }),
    );
  await expectOk(
    call("PUT", `/v1/resources/stratus.${product}`, {
      token: t.operator,
      body: { service: "stratus", unit: "GB" },
    }),
  );
  await put();
  await expectOk(
    call("PUT", `/v1/customers/${t.customers[0]}/quotas`, {
      token: t.operator,
      body: { resource: `stratus.${product}`, limit },
    }),
  );
  return { product, put };
}

/** A new token of vendor `vendorId`, as its `CMW-Auth-Token`. */
export async function vendorTokenOf(t: Tenant, vendorId: string): Promise<string> {
  const issued = await expectOk(
    call("POST", `/v1/vendors/${vendorId}/tokens`, { token: t.operator, body: {} }),
    201,
  );
  return issued.token as string;
}

/** What each consumption report took from depletable `id` (0: passed over), as its shard remembers. */
export function reportDrawsOf(id: string) {
  return runInDurableObject(subscriptionShard(env, id), async (_i, state) =>
    state.storage.sql
      .exec<{ report: string; used: number }>(
        "SELECT report, used FROM report_draws WHERE subscription = ? ORDER BY at, report",
        id,
      )
      .toArray(),
  );
}

/** A point a test holds work at: `reached` once the work `arrive`s, which then waits for `release`. */
export function gate() {
  let arrive!: () => void;
  const reached = new Promise<void>((resolve) => {
    arrive = resolve;
  });
  let release!: () => void;
  const opened = new Promise<void>((resolve) => {
    release = resolve;
  });
  const pass = () => {
    arrive();
    return opened;
  };
  return { reached, release, pass };
}

/**
 * D1 whose first statement matching `sql` waits at `held` before it runs (with its binds); every
 * other statement, and that one's later runs, go through.
 */
export function firstStatementHeld(db: D1Database, sql: RegExp, held: ReturnType<typeof gate>): D1Database {
  let holding = true;
  const statement = (st: D1PreparedStatement): D1PreparedStatement =>
    new Proxy(st, {
      get(t, key) {
        if (key === "bind") return (...values: unknown[]) => statement(t.bind(...values));
        const value = Reflect.get(t, key);
        if (typeof value !== "function") return value;
        if (!["all", "run", "first", "raw"].includes(key as string)) return value.bind(t);
        return async (...args: unknown[]) => {
          await held.pass();
          return value.apply(t, args);
        };
      },
    });
  const wrap = <T extends D1Database | D1DatabaseSession>(target: T): T =>
    new Proxy(target, {
      get(t, key) {
        if (key === "prepare")
          return (query: string) => {
            const st = t.prepare(query);
            if (!holding || !sql.test(query)) return st;
            holding = false;
            return statement(st);
          };
        if (key === "withSession") return (start?: string) => wrap((t as D1Database).withSession(start));
        const value = Reflect.get(t, key);
        return typeof value === "function" ? value.bind(t) : value;
      },
    });
  return wrap(db);
}

/**
 * Bindings whose subscription shards' calls go through `around`: given the method, its arguments
 * (a shard's take the subscription's id first) and the call itself, it answers in its place (counts
 * it, holds it, throws as a lost instance would). `then` stays undefined: the calls are no promise.
 */
export function shardsAround(around: (method: string, args: unknown[], call: () => unknown) => unknown): Env {
  const shards = {
    idFromName: (name: string) => env.SUBSCRIPTION.idFromName(name),
    get: (id: DurableObjectId) => {
      const stub = env.SUBSCRIPTION.get(id) as unknown as Record<string, (...args: unknown[]) => unknown>;
      return new Proxy(
        {},
        {
          get: (_, m) =>
            m === "then"
              ? undefined
              : (...args: unknown[]) => around(m as string, args, () => stub[m as string]?.(...args)),
        },
      );
    },
  };
  return { ...env, SUBSCRIPTION: shards as unknown as Env["SUBSCRIPTION"] };
}

/**
 * Bindings whose subscription shards hold the calls of `method` at a gate until released: every
 * one, or only the `nth` (from 1); with `dies`, such a call throws at once instead, as a dead
 * Worker's. Every other call goes through.
 */
export function shardsHeld(method: string, options: { nth?: number; dies?: boolean } = {}) {
  const stall = gate();
  let seen = 0;
  const held = shardsAround(async (m, _, call) => {
    if (m === method && (options.nth === undefined || ++seen === options.nth)) {
      if (options.dies) throw new Error("the Worker died");
      await stall.pass();
    }
    return call();
  });
  return { env: held, ...stall };
}

/**
 * Bindings whose quota ledgers' `methods` wait at a gate (`reached`, then `release`): `before`
 * reaching the ledger, `after` its answer (the call took effect; its caller goes on only once
 * released), or wait and then `die` instead of reaching it, as a request whose ledger call fails
 * (or that dies there) does, or reach it and then fail (`lost`: it took effect, its answer was
 * lost on the way back). The first `skip` calls of `methods` go through untouched (the second
 * `closeSource` of a removal, say). Pass its `env` to `call` or to the app function under test.
 */
export function ledgersHeld(
  methods: readonly string[],
  when: "before" | "after" | "die" | "lost" = "before",
  skip = 0,
) {
  const stall = gate();
  let untouched = skip;
  const held = {
    idFromName: (name: string) => env.QUOTA_LEDGER.idFromName(name),
    get: (id: DurableObjectId) => {
      const stub = env.QUOTA_LEDGER.get(id) as unknown as Record<string, (...args: unknown[]) => unknown>;
      return new Proxy(
        {},
        {
          get: (_, m) =>
            m === "then"
              ? undefined
              : async (...args: unknown[]) => {
                  if (!methods.includes(m as string)) return stub[m as string]?.(...args);
                  if (untouched > 0) {
                    untouched--;
                    return stub[m as string]?.(...args);
                  }
                  if (when === "after" || when === "lost") {
                    const answer = await stub[m as string]?.(...args);
                    await stall.pass();
                    if (when === "lost") throw new Error("ledger answer lost");
                    return answer;
                  }
                  await stall.pass();
                  if (when === "die") throw new Error("ledger unreachable");
                  return stub[m as string]?.(...args);
                },
        },
      );
    },
  };
  return { env: { ...env, QUOTA_LEDGER: held as unknown as Env["QUOTA_LEDGER"] }, ...stall };
}

/** `probe`'s first answer that is not undefined, asked every 100 ms up to `tries` times. */
export async function eventually<T>(
  probe: () => Promise<T | undefined>,
  what: string,
  tries = 150,
): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/**
 * For the file: vendors' endpoints (hosts under `.example`) answer as `answer` says (204 by
 * default); any other fetch goes out as it would.
 */
export function vendorEndpoints(answer: (url: URL) => Response = () => new Response(null, { status: 204 })) {
  beforeAll(() => {
    const realFetch = globalThis.fetch;
    vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
      const url = new URL(new Request(input as RequestInfo, init).url);
      return url.host.endsWith(".example") ? answer(url) : realFetch(input as RequestInfo, init);
    });
  });
  afterAll(() => vi.restoreAllMocks());
}

/** A copy of `table` as it is now: a replica that has not applied what follows. */
export async function snapshotOf(table: string): Promise<string> {
  const name = `${table}_lag_${crypto.randomUUID().replace(/-/g, "")}`;
  await env.DB.prepare(`CREATE TABLE "${name}" AS SELECT * FROM "${table}"`).run();
  return name;
}

/**
 * The Worker's bindings with a replica a write behind: a D1 session not started on the primary
 * (from a bookmark, or `first-unconstrained`) runs its reads as `read` rewrites them. Writes go
 * to the primary, as D1 sends them.
 */
export function replicaReading(read: (sql: string) => string): Env {
  const behind = (session: D1DatabaseSession) =>
    new Proxy(session, {
      get(target, name) {
        if (name === "prepare")
          return (sql: string) => target.prepare(/^\s*select/i.test(sql) ? read(sql) : sql);
        const value = Reflect.get(target, name);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  const db = new Proxy(env.DB, {
    get(target, name) {
      if (name === "withSession")
        return (start?: string) =>
          start === "first-primary" ? target.withSession(start) : behind(target.withSession(start));
      const value = Reflect.get(target, name);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return Object.create(env, { DB: { value: db } }) as Env;
}

/** `replicaReading` where `table` is still `lagged` (`snapshotOf`). */
export const replicaBehind = (table: string, lagged: string): Env =>
  replicaReading((sql) => sql.replaceAll(`"${table}"`, `"${lagged}"`));

/**
 * The terms a cron run at `before` would page as due, without claiming them for later runs (the
 * claim's mark is set in the past): for tests asking whether a run finds a term.
 */
export function dueBy(before: Date, after: { endTime: string; id: string } | null = null, limit = 500) {
  return claimDue(env, before, before, new Date(0), after, limit);
}

/** Delivers renewal messages to the renewals consumer in one batch; answers what it acked and retried. */
export async function deliverRenewals(messages: RenewalMessage[]) {
  const batch = createMessageBatch<RenewalMessage>(
    "stratus-renewals",
    messages.map((body, i) => ({
      id: `renewal-${i}-${body.subscription}`,
      timestamp: new Date(),
      attempts: 1,
      body,
    })),
  );
  await worker.queue(batch, env);
  return getQueueResult(batch, createExecutionContext());
}

/** Buys one subscription for the tenant's first customer (`object`: the rest of its line); answers it. */
export async function buyOne(t: Tenant, object: Record<string, unknown>) {
  const r = await expectOk(
    call("POST", "/v1/subscriptions/", {
      token: t.partnerKey,
      body: { objects: [{ customer: t.customers[0], ...object }] },
    }),
    201,
  );
  return r.objects[0];
}

/**
 * A syndicated term of `period` bought for a new tenant's first customer, its purchase (a 202)
 * waiting on its vendor: its id, the tenant, its product, the vendor's token, `report`, the
 * vendor's PATCH of a term's `deploymentStatus` (its answer as it comes), and `completed`, which
 * waits until the purchase's operation answers 201.
 */
export async function waitingTerm(period: string, autoRenew: boolean) {
  const t = await tenantWithCatalog(1, 100);
  const { product, vendorId } = await syndicatedProduct(t);
  const r = await call("POST", "/v1/subscriptions/", {
    token: t.partnerKey,
    body: {
      objects: [{ customer: t.customers[0], resource: product, amount: 1, period, auto_renew: autoRenew }],
    },
  });
  if (r.status !== 202) throw new Error(`expected 202, got ${r.status}: ${r.text}`);
  const location = r.headers.get("location") as string;
  const id = (
    await eventually(async () => {
      const list = await expectOk(call("GET", "/v1/subscriptions/?status=all", { token: t.partnerKey }));
      return list.objects[0];
    }, "the subscription")
  ).id as string;
  const vendorToken = await vendorTokenOf(t, vendorId);
  const report = (on: string, deploymentStatus: string) =>
    call("PATCH", `/api/subscription/${on}`, { token: vendorToken, body: { deploymentStatus } });
  const completed = () =>
    eventually(async () => {
      const op = await call("GET", location, { token: t.partnerKey });
      return op.status === 201 ? true : undefined;
    }, "the purchase to complete");
  return { t, product, id, vendorToken, report, location, completed };
}

/**
 * A syndicated term of `period` bought for a new tenant's first customer and deployed by its
 * vendor, its purchase completed (`waitingTerm`, then the vendor's `DEPLOYED`).
 */
export async function deployedTerm(period: string, autoRenew: boolean) {
  const { t, product, id, vendorToken, report, completed } = await waitingTerm(period, autoRenew);
  await expectOk(report(id, "DEPLOYED"));
  await completed();
  return { t, product, id, vendorToken, report };
}

/** A week's syndicated term its vendor deployed, auto-renewing, extended twice: its chain's three terms. */
export async function deployedChain() {
  const term = await deployedTerm("1 week", true);
  const second = await extendTerm(term.t, term.id);
  const last = await extendTerm(term.t, second);
  return { ...term, second, last };
}

/** Term `on`'s deployment status, as its object holds it (undefined: no such term). */
export const deploymentOf = async (on: string) => (await subscriptionObject(env, on).get())?.deploymentStatus;

/** Waits until term `on`'s deployment status is `expected` (carried by a walk or the queue). */
export const deploymentBecomes = (on: string, expected: string, tries?: number) =>
  eventually(
    async () => ((await deploymentOf(on)) === expected ? true : undefined),
    `${on} ${expected}`,
    tries,
  );

/** Extends chain term `on` (its last) by one term, as tenant `t`'s partner: the extension's id. */
export async function extendTerm(t: Tenant, on: string): Promise<string> {
  const ext = await expectOk(
    call("POST", `/v1/subscriptions/${on}/action/?do=extend`, { token: t.partnerKey }),
  );
  return ext.id as string;
}

/**
 * A chain of `terms` terms bought for tenant `t`'s first customer (`object`: the first term's line)
 * and extended by its partner, one term at a time: their ids, in the chain's order.
 */
export async function chainOf(t: Tenant, object: Record<string, unknown>, terms: number): Promise<string[]> {
  const ids = [(await buyOne(t, object)).id as string];
  while (ids.length < terms) ids.push(await extendTerm(t, ids.at(-1) as string));
  return ids;
}

/**
 * Runs the cron's renewal of chain term `last` a minute after its end, and checks that nothing was
 * renewed and no renewal charged: answers what the term came to instead.
 */
export async function expectNotRenewedAtEnd(t: Tenant, last: string): Promise<string> {
  const end = Date.parse((await subscriptionObject(env, last).get())?.endTime as string);
  const outcome = await renewOrExpire(env, last, new Date(end + 60_000));
  expect(outcome).not.toBe("renewed");
  const charges = await expectOk(call("GET", "/v1/charges?limit=0", { token: t.partnerKey }));
  expect((charges.objects as Array<{ kind: string }>).filter((c) => c.kind === "renewal")).toEqual([]);
  return outcome;
}

/** The spies of `spyConsole`, for `logLines`: each test's own. */
const consoleSpies: Partial<Record<"log" | "error", MockInstance>> = {};

/** Spies `console.log` and `console.error` around each test of the file that calls it, for `logLines`. */
export function spyConsole(): void {
  beforeEach(() => {
    consoleSpies.log = vi.spyOn(console, "log");
    consoleSpies.error = vi.spyOn(console, "error");
  });
  afterEach(() => vi.restoreAllMocks());
}

/** The JSON log lines written through `console[stream]` (spied: `spyConsole`) whose `event` is `event`. */
export function logLines(stream: "log" | "error", event: string): Record<string, unknown>[] {
  const spy = consoleSpies[stream];
  if (!spy) throw new Error("logLines reads what spyConsole spied: call it in the test file");
  return spy.mock.calls
    .map(([line]) => (typeof line === "string" && line.startsWith("{") ? JSON.parse(line) : null))
    .filter((line) => line?.event === event);
}

/** What was written through `console[stream]` (spied: `spyConsole`), every argument of every call. */
export const consoleWritten = (stream: "log" | "error"): string =>
  (consoleSpies[stream]?.mock.calls ?? []).flat().join("\n");

/**
 * `db`, handing `note` the rows of every statement's answer read with `all` or `raw` (values in
 * column order), sessions included: what a request read, counted by the test.
 */
export function d1Answers(db: D1Database, note: (rows: unknown[][]) => void): D1Database {
  const statement = (s: D1PreparedStatement): D1PreparedStatement =>
    new Proxy(s, {
      get(target, key) {
        if (key === "bind") return (...values: unknown[]) => statement(target.bind(...values));
        if (key === "all")
          return async () => {
            const result = await target.all();
            note(result.results.map((row) => Object.values(row as object)));
            return result;
          };
        if (key === "raw")
          return async (options?: { columnNames?: boolean }) => {
            const rows = (await target.raw(options as { columnNames: true })) as unknown[][];
            note(rows);
            return rows;
          };
        const value = Reflect.get(target, key);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  const wrap = <T extends D1Database | D1DatabaseSession>(target: T): T =>
    new Proxy(target, {
      get(t, key) {
        if (key === "prepare") return (query: string) => statement(t.prepare(query));
        if (key === "withSession")
          return (start?: string) => wrap((t as D1Database).withSession(start as D1SessionConstraint));
        const value = Reflect.get(t, key);
        return typeof value === "function" ? value.bind(t) : value;
      },
    });
  return wrap(db);
}

/** A queue binding that keeps what is sent to it, in order (its consumer down or behind). */
export function keptQueue() {
  const sent: any[] = [];
  const queue = {
    send: async (body: unknown) => {
      sent.push(body);
    },
    sendBatch: async (messages: Iterable<{ body: unknown }>) => {
      for (const m of messages) sent.push(m.body);
    },
  };
  return { queue: queue as unknown as Queue, sent };
}

/**
 * A new tenant's daily auto-renewing term of 2 cpu, bought for 1 February of `year` (far from any
 * other test's), and an instant 14 days past its end: the cron down since.
 */
export async function dailyTwoWeeksBehind(year: number) {
  const t = await tenantWithCatalog(1, 100);
  const sub = await buyOne(t, {
    resource: "cpu",
    amount: 2,
    start_time: new Date(Date.UTC(year, 1, 1, 12)).toISOString(),
    period: "1 day",
    auto_renew: true,
  });
  return { t, sub, at: new Date(Date.parse(sub.end_time) + 14 * 86_400_000 + 60_000) };
}

/**
 * A monthly auto-renewing term of 2 cpu for `t`'s first customer, from 1 February noon of `year`
 * (one of the test file's own, far from any other's), and the instants a minute before and after
 * its end.
 */
export async function dueMonthlyTerm(t: Tenant, year: number) {
  const sub = (await buyOne(t, {
    resource: "cpu",
    amount: 2,
    start_time: new Date(Date.UTC(year, 1, 1, 12)).toISOString(),
    period: "1 month",
    auto_renew: true,
  })) as { id: string; end_time: string };
  const end = Date.parse(sub.end_time);
  return { id: sub.id, before: new Date(end - 60_000), over: new Date(end + 60_000) };
}

/** The amounts (minor units) of `t`'s renewal charge lines. */
export async function renewalCharges(t: Tenant): Promise<number[]> {
  const rows = await env.DB.prepare(
    "SELECT amount_minor FROM charges WHERE partner_id = ? AND kind = 'renewal'",
  )
    .bind(t.partnerId)
    .all<{ amount_minor: number }>();
  return rows.results.map((r) => r.amount_minor);
}
