import { evictDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import { renewOrExpire } from "../../src/app/renewals";
import { assignIds, buy, plan } from "../../src/app/subscriptions";
import { armFault, disarmFaults, FAULT_STEPS, type FaultStep } from "../../src/domain/faults";
import { isRunning } from "../../src/domain/metering";
import { subscriptionObject, subscriptionShard } from "../../src/objects/subscription-object";
import { expectBooksBalance, recoverAll } from "../books";
import { call, type Reply, type Tenant, tenant, unique, withCatalog } from "../helpers";

/**
 * The books balance whatever happens: random sequences of purchases, amount changes, starts and
 * stops, extensions, auto_renew toggles, terms ending (renewed or expired, as the cron does) and
 * cancels, with a fault injected at a random step of any of them, a retry with the same key
 * or none, objects evicted, and requests that die with nothing to catch them. After recovery,
 * `expectBooksBalance` holds: quota equals what live subscriptions hold, nothing pending,
 * nothing on two orders, no operation stuck; and each cloud runs, at the size, as the requests
 * asked (`expectCloudsAsAsked`), not only at the end but between any two requests on it
 * (`expectRunsAsAsked`: its metered history runs, at that size, exactly while the requests say
 * so). Every sequence starts with a cloud bought; amounts change by PATCH or by PUT of the
 * object as read (CloudSigma's update, conditional or not).
 */

afterEach(() => disarmFaults());

type Step =
  | { kind: "buy"; customer: number; product: "cpu" | "mem" | "cumulus"; amount: number; async: boolean }
  | { kind: "patch"; target: number; amount: number }
  /** PUT of the subscription as read, with `amount` (and `auto_renew` flipped if `flip`), as CloudSigma's clients update. */
  | { kind: "put"; target: number; amount: number; flip: boolean; conditional: boolean }
  | { kind: "run"; target: number; action: "start" | "stop" }
  | { kind: "extend"; target: number }
  | { kind: "cancel"; target: number }
  | { kind: "died"; customer: number; at: FaultStep }
  | { kind: "evict"; target: number }
  | { kind: "auto_renew"; target: number }
  | { kind: "term ends"; target: number };

interface Write {
  step: Step;
  fault: FaultStep | null;
  keyed: boolean;
  retried: boolean;
}

const purchaseSteps = FAULT_STEPS.filter((s) => s.startsWith("purchase."));

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({
    kind: fc.constant("buy" as const),
    customer: fc.nat(1),
    product: fc.constantFrom("cpu" as const, "mem" as const, "cumulus" as const),
    amount: fc.integer({ min: 1, max: 4 }),
    async: fc.boolean(),
  }),
  fc.record({
    kind: fc.constant("patch" as const),
    target: fc.nat(20),
    amount: fc.integer({ min: 1, max: 5 }),
  }),
  fc.record({
    kind: fc.constant("put" as const),
    target: fc.nat(20),
    amount: fc.integer({ min: 1, max: 5 }),
    flip: fc.boolean(),
    conditional: fc.boolean(),
  }),
  fc.record({
    kind: fc.constant("run" as const),
    target: fc.nat(20),
    action: fc.constantFrom("start" as const, "stop" as const),
  }),
  fc.record({ kind: fc.constant("extend" as const), target: fc.nat(20) }),
  fc.record({ kind: fc.constant("cancel" as const), target: fc.nat(20) }),
  fc.record({
    kind: fc.constant("died" as const),
    customer: fc.nat(1),
    at: fc.constantFrom(...purchaseSteps),
  }),
  fc.record({ kind: fc.constant("evict" as const), target: fc.nat(20) }),
  fc.record({ kind: fc.constant("auto_renew" as const), target: fc.nat(20) }),
  fc.record({ kind: fc.constant("term ends" as const), target: fc.nat(20) }),
);

const write: fc.Arbitrary<Write> = fc.record({
  step,
  fault: fc.option(fc.constantFrom(...FAULT_STEPS), { freq: 2 }),
  keyed: fc.boolean(),
  retried: fc.boolean(),
});

/**
 * What the requests asked of each cloud, kept apart from what stratus stored (its run history
 * would agree with itself however wrong it is): the value of the last change answered 2xx, and
 * those of changes answered 5xx since, which may or may not have applied. The requests run one
 * after another, so the cloud must end in one of these: the last one accepted decides.
 */
interface Asked<T> {
  last: T;
  maybe: Set<T>;
}
interface CloudModel {
  amount: Asked<number>;
  running: Asked<boolean>;
  /**
   * Between the answer to one request on the cloud and the next request on it (wall-clock ms, the
   * Worker's clock too), what it may be doing: its running time is metered from its history, so
   * a history that runs, or runs at a size, outside what the requests asked would bill it wrongly.
   */
  windows: Window[];
}
interface Window {
  from: number;
  to: number;
  running: boolean[];
  amounts: number[];
}

function opening(cloud: CloudModel, from: number): void {
  cloud.windows.push({
    from,
    to: Number.POSITIVE_INFINITY,
    running: [cloud.running.last, ...cloud.running.maybe],
    amounts: [cloud.amount.last, ...cloud.amount.maybe],
  });
}

/** Each window of each cloud: running (and at which size) or not, at every instant, as asked. */
async function expectRunsAsAsked(clouds: Map<string, CloudModel>): Promise<void> {
  for (const [id, model] of clouds) {
    const r = await subscriptionObject(env, id).get();
    if (!r) continue;
    const through = r.settledRuns?.through ?? Number.NEGATIVE_INFINITY;
    for (const w of model.windows) {
      if (w.from < through) continue;
      const points = [w.from];
      for (const i of r.runs) {
        for (const at of [i.start, i.end]) if (at !== null && at > w.from && at < w.to) points.push(at);
      }
      for (const at of points) {
        const i = r.runs.find((i) => i.start <= at && (i.end === null || at < i.end));
        const what = `cloud ${id} at ${new Date(at).toISOString()} (window ${JSON.stringify(w)}; runs ${JSON.stringify(r.runs)})`;
        expect(w.running, `${what}: running`).toContain(i !== undefined);
        if (i) expect(w.amounts, `${what}: its size`).toContain(i.quantity);
      }
    }
  }
}

function answered<T>(asked: Asked<T>, value: T, status: number): void {
  if (status >= 200 && status < 300) {
    asked.last = value;
    asked.maybe.clear();
  } else if (status >= 500) asked.maybe.add(value);
}

async function expectCloudsAsAsked(clouds: Map<string, CloudModel>): Promise<void> {
  for (const [id, model] of clouds) {
    const r = await subscriptionObject(env, id).get();
    if (!r || r.endedAt !== null) continue;
    expect([model.amount.last, ...model.amount.maybe], `cloud ${id}: its amount`).toContain(r.amount);
    const running = isRunning(r.runs);
    expect([model.running.last, ...model.running.maybe], `cloud ${id}: running`).toContain(running);
  }
}

async function run(t: Tenant, w: Write, ids: string[], clouds: Map<string, CloudModel>): Promise<void> {
  const s = w.step;
  if (s.kind === "died") {
    const now = new Date();
    const customer = t.customers[s.customer] as string;
    const planned = await plan(
      env,
      t.partnerId,
      [{ customer, resource: "mem", amount: 1, period: "1 month" }],
      now,
    );
    const bought = assignIds(planned.subscriptions);
    armFault(s.at);
    await buy(env, t.partnerId, planned.subscriptions, bought, now).catch(() => undefined);
    disarmFaults();
    return;
  }
  const target = ids.length === 0 ? undefined : ids[("target" in s ? s.target : 0) % ids.length];
  if (s.kind === "term ends") {
    // The cron's renewal of the target when its term ends: renewed if auto_renew, else expired.
    const r = target ? await subscriptionObject(env, target).get() : null;
    if (!r?.endTime) return;
    if (w.fault) armFault(w.fault);
    await renewOrExpire(env, r.id, new Date(Date.parse(r.endTime) + 1000)).catch(() => undefined);
    disarmFaults();
    return;
  }
  if (s.kind === "evict") {
    if (!target) return;
    // Evicting needs a running instance: a read wakes it, then it is thrown away mid-life.
    await subscriptionObject(env, target).get();
    await evictDurableObject(subscriptionShard(env, target));
    return;
  }
  const key = w.keyed ? unique("key") : null;
  // What a CloudSigma client sends back to update: the object as it reads it (before any fault).
  const read =
    s.kind === "put" && target
      ? await call("GET", `/v1/subscriptions/${target}/`, { token: t.partnerKey })
      : null;
  const send = (): Promise<Reply> => {
    const headers: Record<string, string> = key ? { "idempotency-key": key } : {};
    switch (s.kind) {
      case "buy":
        if (s.async) headers.prefer = "respond-async";
        return call("POST", "/v1/subscriptions/", {
          token: t.partnerKey,
          headers,
          body: {
            objects: [
              { customer: t.customers[s.customer], resource: s.product, amount: s.amount, period: "1 month" },
            ],
          },
        });
      case "patch":
        return call("PATCH", `/v1/subscriptions/${target}/`, {
          token: t.partnerKey,
          headers,
          body: { amount: s.amount },
        });
      case "put": {
        const body = {
          ...read?.body,
          amount: s.amount,
          ...(s.flip ? { auto_renew: !read?.body.auto_renew } : {}),
        };
        const etag = read?.headers.get("etag");
        if (s.conditional && etag) headers["if-match"] = etag;
        return call("PUT", `/v1/subscriptions/${target}/`, { token: t.partnerKey, headers, body });
      }
      case "run":
        return call("POST", `/v1/subscriptions/${target}/action/?do=${s.action}`, {
          token: t.partnerKey,
          headers,
          body: {},
        });
      case "extend":
        return call("POST", `/v1/subscriptions/${target}/action/?do=extend`, {
          token: t.partnerKey,
          headers,
          body: {},
        });
      case "cancel":
        return call("DELETE", `/v1/subscriptions/${target}/`, { token: t.partnerKey, headers });
      case "auto_renew":
        return call("POST", `/v1/subscriptions/${target}/action/?do=auto_renew`, {
          token: t.partnerKey,
          headers,
          body: {},
        });
    }
  };
  if (s.kind !== "buy" && !target) return;
  const timed = target === undefined ? undefined : clouds.get(target);
  const last = timed?.windows.at(-1);
  if (last && (s.kind === "patch" || s.kind === "put" || s.kind === "run" || s.kind === "cancel"))
    last.to = Date.now();
  if (w.fault) armFault(w.fault);
  let reply = await send();
  disarmFaults();
  if (reply.status >= 500 && key && w.retried) reply = await send();
  const answeredAt = Date.now();
  // The requests are well formed: the one 400s are extending what has no end (a cloud, traffic)
  // and starting or stopping what is not a cloud.
  if (reply.status === 400)
    expect(reply.body.detail, reply.text).toMatch(/has no end to extend|only CaaS subscriptions can/);
  const cloud = target === undefined ? undefined : clouds.get(target);
  if (cloud && (s.kind === "patch" || s.kind === "put")) answered(cloud.amount, s.amount, reply.status);
  if (cloud && s.kind === "run") answered(cloud.running, s.action === "start", reply.status);
  if (cloud && s.kind === "cancel") answered(cloud.running, false, reply.status);
  if (cloud && (s.kind === "patch" || s.kind === "put" || s.kind === "run" || s.kind === "cancel"))
    opening(cloud, answeredAt);
  for (const o of (reply.status === 201 ? reply.body.objects : []) as { id: string; product: string }[]) {
    ids.push(o.id);
    if (s.kind === "buy" && o.product === "cumulus") {
      const cloud: CloudModel = {
        amount: { last: s.amount, maybe: new Set() },
        running: { last: false, maybe: new Set() },
        windows: [],
      };
      opening(cloud, answeredAt);
      clouds.set(o.id, cloud);
    }
  }
}

describe("the books balance under random work and injected faults", () => {
  it("holds for every sequence", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(write, { minLength: 1, maxLength: 10 }), async (writes) => {
        const t = await tenant({ customers: 2 });
        await withCatalog(t, 12);
        const ids: string[] = [];
        const clouds = new Map<string, CloudModel>();
        // A cloud from the start, so starts, stops and resizes have one to meter.
        const cloud: Step = { kind: "buy", customer: 0, product: "cumulus", amount: 2, async: false };
        await run(t, { step: cloud, fault: null, keyed: false, retried: false }, ids, clouds);
        for (const w of writes) await run(t, w, ids, clouds);
        // Let asynchronous purchases run (or die), then recover as if the bound had passed.
        await new Promise((resolve) => setTimeout(resolve, 300));
        await recoverAll(t);
        await expectBooksBalance(t);
        await expectCloudsAsAsked(clouds);
        await expectRunsAsAsked(clouds);
      }),
      { numRuns: 25, interruptAfterTimeLimit: 240_000 },
    );
  }, 300_000);
});
