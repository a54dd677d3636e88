import { env } from "cloudflare:workers";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { extend, setAutoRenew } from "../../src/app/extend";
import { FAN_OUT_CLAIM_MS } from "../../src/app/fan-out";
import type { RenewalMessage } from "../../src/app/renewals";
import { assignIds, buy, plan } from "../../src/app/subscriptions";
import { HORIZON_MS } from "../../src/cron/renewals";
import { claimDue } from "../../src/db/due-terms";
import { AppError } from "../../src/domain/errors";
import { subscriptionIdBeside, uuidv7 } from "../../src/domain/ids";
import { partnerScope } from "../../src/domain/scope";
import type { SubscriptionRecord } from "../../src/domain/subscriptions";
import { subscriptionObject } from "../../src/objects/subscription-object";
import { expectBooksBalance } from "../books";
import {
  call,
  deliverRenewals as deliver,
  dueBy,
  expectOk,
  PRODUCTS,
  type Tenant,
  tenant,
  usageOf,
  withCatalog,
} from "../helpers";

/**
 * Chains over simulated time: one or two customers' chains bought (period, end_time, both with a
 * future start, period until an end), extended (repeating, with a period, with an end_time, also
 * one before the chain's end), auto_renew set on any term, any term cancelled, and the renewal
 * cron run at chosen instants (to its fixpoint: a late run catches up; each pass paged by the
 * cursor its continuation message carries, a row a page, each page's renewals delivered before
 * the next is read; its messages sometimes delivered twice at once, as an at-least-once queue
 * may), and the catalog's price of cpu or mem
 * changed between steps (each term is charged at the price when it was bought, renewals at the
 * price when the cron bought them). Every write runs at the
 * simulated clock (`now` passed down, as the cron passes `at`). After each step: every term of
 * every chain starts where the spec says (the one before's end, or the instant it was bought if the
 * chain had lapsed), lasts what the spec's rules say (an oracle kept apart from src/domain), is
 * charged exactly once at price × duration with its kind; quota is each live chain's amount once,
 * nothing pending; after a cron run nothing due is left live. At the end `expectBooksBalance`.
 */

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const NOON = 12 * HOUR;

// ---- an oracle of the spec's durations, independent of src/domain/{period,durations}.ts ----
interface P {
  text: string;
  months: number;
  days: number;
  hours: number;
}
const PERIODS: P[] = [
  { text: "1 week", months: 0, days: 7, hours: 0 },
  { text: "3 days", months: 0, days: 3, hours: 0 },
  { text: "1 month", months: 1, days: 0, hours: 0 },
  { text: "2 months", months: 2, days: 0, hours: 0 },
  { text: "1 year", months: 12, days: 0, hours: 0 },
  { text: "1 month 1 week", months: 1, days: 7, hours: 0 },
  { text: "36 hours", months: 0, days: 0, hours: 36 },
  { text: "1 year 1 month", months: 13, days: 0, hours: 0 },
];
const periodOf = (text: string) => PERIODS.find((p) => p.text === text);
const dim = (y: number, m: number) => new Date(Date.UTC(y, m + 1, 0)).getUTCDate();
function shiftMonths(t: number, months: number): number {
  const d = new Date(t);
  const total = d.getUTCFullYear() * 12 + d.getUTCMonth() + months;
  const y = Math.floor(total / 12);
  const m = total - y * 12;
  const day = Math.min(d.getUTCDate(), dim(y, m));
  return Date.UTC(y, m, day) + (t - Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
}
const addP = (t: number, p: P) => shiftMonths(t, p.months) + p.days * DAY + p.hours * HOUR;
const subP = (t: number, p: P) => shiftMonths(t - p.days * DAY - p.hours * HOUR, -p.months);
const mod = (a: number, n: number) => ((a % n) + n) % n;
const noonDown = (t: number) => t - mod(t - NOON, DAY);
const noonUp = (t: number) => (mod(t - NOON, DAY) === 0 ? t : noonDown(t) + DAY);
/** The demo catalog's unit prices per hour, in minor units: what each run starts from. */
const UNIT: Record<string, bigint> = { cpu: 2n, mem: 3n };
function priceOf(unit: bigint, amount: number, start: number, end: number): number {
  const n = BigInt(amount) * BigInt((end - start) / 1000) * unit;
  const q = n / 3600n;
  return Number(n % 3600n >= 1800n ? q + 1n : q);
}
// ---------------------------------------------------------------------------------------------

type Duration =
  | { kind: "period"; p: number }
  | { kind: "end"; hours: number }
  | { kind: "start+period"; off: number; p: number }
  | { kind: "start+end"; off: number; len: number }
  | { kind: "period until end"; hours: number; p: number };

type Step =
  | { kind: "buy"; customer: number; product: "cpu" | "mem"; amount: number; d: Duration; autoRenew: boolean }
  | { kind: "extend"; chain: number; term: number; input: "none" | { p: number } | { endH: number } }
  | { kind: "auto_renew"; chain: number; term: number; value: boolean }
  | { kind: "cancel"; chain: number; term: number }
  /** `twice`: the cron's messages are delivered twice at once (the queue delivers at least once). */
  | {
      kind: "advance";
      hours: number;
      twice?: boolean;
      minutes?: number;
      late?: boolean;
      /** To this many minutes before the next noon (terms end at noon: due, not over yet). */
      beforeNoon?: number;
    }
  /** The operator changes a product's price: every term bought from then on is priced at it. */
  | { kind: "reprice"; product: "cpu" | "mem"; unit: number };

const pIdx = fc.nat(PERIODS.length - 1);
const duration: fc.Arbitrary<Duration> = fc.oneof(
  fc.record({ kind: fc.constant("period" as const), p: pIdx }),
  fc.record({ kind: fc.constant("end" as const), hours: fc.integer({ min: 1, max: 24 * 70 }) }),
  fc.record({
    kind: fc.constant("start+period" as const),
    off: fc.integer({ min: 1, max: 24 * 40 }),
    p: pIdx,
  }),
  fc.record({
    kind: fc.constant("start+end" as const),
    off: fc.integer({ min: 1, max: 24 * 40 }),
    len: fc.integer({ min: 1, max: 24 * 70 }),
  }),
  fc.record({
    kind: fc.constant("period until end" as const),
    hours: fc.integer({ min: 1, max: 24 * 90 }),
    p: pIdx,
  }),
);
const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("buy" as const),
      customer: fc.nat(1),
      product: fc.constantFrom("cpu" as const, "mem" as const),
      amount: fc.integer({ min: 1, max: 3 }),
      d: duration,
      autoRenew: fc.oneof(fc.constant(true), fc.boolean()),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant("extend" as const),
      chain: fc.nat(20),
      term: fc.nat(20),
      input: fc.oneof(
        fc.constant("none" as const),
        fc.record({ p: pIdx }),
        fc.record({ endH: fc.integer({ min: -72, max: 24 * 60 }) }),
      ),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("auto_renew" as const),
      chain: fc.nat(20),
      term: fc.nat(20),
      value: fc.boolean(),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant("cancel" as const), chain: fc.nat(20), term: fc.nat(20) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("reprice" as const),
      product: fc.constantFrom("cpu" as const, "mem" as const),
      unit: fc.integer({ min: 1, max: 9 }),
    }),
  },
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant("advance" as const),
      hours: fc.integer({ min: 1, max: 24 * 30 }),
      twice: fc.boolean(),
    }),
  },
);

/** Where the simulated clock starts: month ends, leap and non-leap Februaries, a year's end. */
const BASES = [
  "2032-01-31T09:17:00Z", // leap year, from 31 January
  "2033-01-31T12:00:00Z", // non-leap, at noon
  "2036-02-28T23:30:00Z",
  "2037-02-28T12:00:01Z",
  "2038-12-31T05:00:00Z",
  "2040-02-29T13:00:00Z",
  "2041-03-30T11:59:59Z",
];

interface Chain {
  root: string;
  customer: number;
  product: string;
  amount: number;
}
interface Made {
  kind: "purchase" | "extension" | "renewal";
  at: number;
  /** The product's unit price (minor units per hour) when it was bought. */
  unit: bigint;
}
interface World {
  t: Tenant;
  now: number;
  chains: Chain[];
  made: Map<string, Made>;
  /** Each product's unit price now. */
  unit: Record<string, bigint>;
  log: string[];
  /**
   * The cron pages as the real one does (`claimDue` marks what it enqueues for `FAN_OUT_CLAIM_MS`,
   * the consumer takes the mark back when the term is left as it was or renewed), not by a peek.
   */
  claim?: boolean;
  /**
   * Messages a claiming run sent that the queue has not delivered yet (`late`): the next step runs
   * first (a write, or the next run, which passes over what they claimed), then they are delivered.
   */
  pending: RenewalMessage[];
}

const get = async (id: string) => {
  const r = await subscriptionObject(env, id).get();
  if (!r) throw new Error(`subscription ${id} has no object`);
  return r;
};
const ms = (iso: string | null) => (iso === null ? Number.NaN : Date.parse(iso));

async function termsOf(root: string): Promise<SubscriptionRecord[]> {
  const out: SubscriptionRecord[] = [];
  let id: string | null = root;
  while (id !== null) {
    const r: SubscriptionRecord = await get(id);
    out.push(r);
    id = r.nextId;
  }
  return out;
}

/** The length rule of a new term after `last` (no explicit input), from `start`. */
function repeated(last: SubscriptionRecord, start: number): number {
  const p = last.createdWith === "period" && last.period !== null ? periodOf(last.period) : undefined;
  if (last.createdWith === "period")
    expect(p, `period '${last.period}' is one the test bought`).toBeDefined();
  // An end_time term's interval in its nearest whole days (half a day down), at least one: bought
  // for now on 1 February, at any hour, to 1 March, it extends 28 days (the spec's example).
  const whole = Math.max(1, Math.ceil((ms(last.endTime) - ms(last.startTime)) / DAY - 0.5)) * DAY;
  return noonUp(p ? addP(start, p) : start + whole);
}

async function allTerms(w: World): Promise<Map<string, SubscriptionRecord[]>> {
  const out = new Map<string, SubscriptionRecord[]>();
  for (const c of w.chains) out.set(c.root, await termsOf(c.root));
  return out;
}

/** Rows a page of the model's cron pass reads (the product's is `PAGE`, 500): one, a cursor after every row. */
const CRON_PAGE = 1;

/** Delivers one page's renewal messages, or twice at once (one of two racing may be retried, as the queue would). */
async function deliverPage(w: World, messages: RenewalMessage[], twice: boolean): Promise<void> {
  if (twice) {
    const results = await Promise.all([deliver(messages), deliver(messages)]);
    const retried = results.flatMap((r) => r.retryMessages.map((m) => m.msgId));
    if (retried.length > 0) w.log.push(`  (delivered twice: ${retried.length} retried)`);
    const again = await deliver(messages);
    expect(again.retryMessages, "renewal messages retried").toEqual([]);
  } else {
    const result = await deliver(messages);
    expect(result.retryMessages, "renewal messages retried").toEqual([]);
  }
}

/** The cron at `w.now`, run again until nothing changes (a late run catches up). */
async function cron(w: World, twice = false, late = false): Promise<void> {
  const at = new Date(w.now);
  if (late) {
    // One run that claims and sends, its messages left in the queue.
    const horizon = new Date(w.now + HORIZON_MS);
    const mine = new Set([...(await allTerms(w)).values()].flat().map((r) => r.id));
    let cursor: { id: string; endTime: string } | null = null;
    for (;;) {
      const page = await claimDue(env, horizon, at, new Date(w.now + FAN_OUT_CLAIM_MS), cursor, CRON_PAGE);
      for (const d of page) if (mine.has(d.id)) w.pending.push({ subscription: d.id, at: at.toISOString() });
      const last = page.at(-1);
      if (!last || page.length < CRON_PAGE) break;
      cursor = last;
    }
    w.log.push(`  (late: ${w.pending.map((m) => m.subscription.slice(-6)).join(" ")} waiting in the queue)`);
    return;
  }
  for (let round = 0; ; round++) {
    expect(round, "the cron's catch-up ends").toBeLessThan(80);
    const before = await allTerms(w);
    const arrived = round === 0 && w.pending.length > 0;
    if (arrived) {
      // What earlier runs sent arrives now (after this run's claims would have passed over it).
      const waiting = w.pending;
      w.pending = [];
      w.log.push(`  (delivered late: ${waiting.map((m) => m.subscription.slice(-6)).join(" ")})`);
      await deliverPage(w, waiting, twice);
    }
    const mine = new Set([...before.values()].flat().map((r) => r.id));
    // This run's terms, also those its renewals made since the round began (a page may claim them).
    const ofMine = async <R extends { id: string }>(rows: R[]): Promise<R[]> => {
      if (rows.some((d) => !mine.has(d.id)))
        for (const r of [...(await allTerms(w)).values()].flat()) mine.add(r.id);
      return rows.filter((d) => mine.has(d.id));
    };
    const horizon = new Date(w.now + HORIZON_MS);
    // What a run at `at` may claim (with the claim: terms not claimed by a run within the hour), as a peek.
    const peek = (after: { id: string; endTime: string } | null, limit: number) =>
      w.claim ? claimDue(env, horizon, at, new Date(0), after, limit) : dueBy(horizon, after, limit);
    const dueNow = async () => ofMine(await peek(null, 5000));
    // A round of its own for what late messages did, then the run's own rounds.
    const due = arrived ? [] : await dueNow();
    if (due.length === 0 && !arrived) break;
    // Paged as the cron hands its work on (src/app/fan-out.ts), with a small page: a page at a time
    // from the last row sent, as a continuation message is paged by the renewals consumer, each
    // page's renewals delivered before the next page is read (renewals made meanwhile, and terms
    // ending at the same noon, land on either side of the cursor).
    const paged = new Set<string>();
    let cursor: { id: string; endTime: string } | null = null;
    while (!arrived) {
      const page: { id: string; endTime: string }[] = w.claim
        ? await claimDue(env, horizon, at, new Date(w.now + FAN_OUT_CLAIM_MS), cursor, CRON_PAGE)
        : await dueBy(horizon, cursor, CRON_PAGE);
      const messages = (await ofMine(page)).map((d) => ({ subscription: d.id, at: at.toISOString() }));
      for (const m of messages) {
        expect(paged.has(m.subscription), `${m.subscription} paged twice in one pass`).toBe(false);
        paged.add(m.subscription);
      }
      if (messages.length > 0) await deliverPage(w, messages, twice);
      const last = page.at(-1);
      if (!last || page.length < CRON_PAGE) break;
      cursor = last;
    }
    // Every term due when the pass began was paged, unless a renewal delivered before its page
    // made it due no more.
    const still = new Set((await dueNow()).map((d) => d.id));
    for (const d of due)
      if (!paged.has(d.id)) expect(still.has(d.id), `${d.id} due, passed over by the paging`).toBe(false);
    const after = await allTerms(w);
    let changed = false;
    for (const [root, terms] of after) {
      const old = new Map(before.get(root)!.map((r) => [r.id, r]));
      for (const [i, r] of terms.entries()) {
        const was = old.get(r.id);
        if (!was) {
          // A renewal: bought by this run, from the end of the term before, as long as it repeats.
          changed = true;
          const prev = terms[i - 1]!;
          const prevWas = old.get(prev.id);
          w.made.set(r.id, { kind: "renewal", at: w.now, unit: w.unit[r.product]! });
          w.log.push(`  cron renewed ${prev.id.slice(-6)} -> ${r.id.slice(-6)} ${r.startTime}..${r.endTime}`);
          if (prevWas) {
            expect(prevWas.nextId, `renewed ${prev.id}: nothing followed it`).toBeNull();
            expect(prevWas.autoRenew, `renewed ${prev.id}: auto_renew was on`).toBe(true);
            expect(prevWas.endedAt, `renewed ${prev.id}: it was live`).toBeNull();
            expect(ms(prevWas.endTime), `renewed ${prev.id}: due`).toBeLessThanOrEqual(w.now + HORIZON_MS);
          }
          expect(r.startTime, `renewal ${r.id} starts at the chain's end`).toBe(prev.endTime);
          expect(ms(r.endTime), `renewal ${r.id} ends`).toBe(repeated(prev, ms(prev.endTime)));
          expect(r.autoRenew).toBe(prev.autoRenew);
        } else if (was.endedAt === null && r.endedAt !== null) {
          changed = true;
          w.log.push(`  cron expired ${r.id.slice(-6)} (${r.endReason}, ${r.renewalError})`);
          expect(r.endReason, `${r.id} ended by the cron`).toBe("expired");
          expect(ms(r.endTime), `${r.id} expired only once over`).toBeLessThanOrEqual(w.now);
          const successor = was.nextId === null ? null : old.get(was.nextId);
          const chainCancelled = successor !== null && successor !== undefined && successor.endedAt !== null;
          if (was.autoRenew && !chainCancelled)
            expect(r.renewalError, `auto-renewing ${r.id} expired without a reason`).not.toBeNull();
        }
      }
    }
    if (!changed && !arrived) break;
  }
  // Nothing due is left live: each live term whose end passed has a live successor, or one that
  // ran its course (expired: the term before it was followed to its end, and is due for nothing).
  for (const terms of (await allTerms(w)).values()) {
    for (const [i, r] of terms.entries()) {
      const next = terms[i + 1];
      const followed = next !== undefined && (next.endedAt === null || next.endReason === "expired");
      if (r.endedAt === null && !followed) {
        expect(ms(r.endTime), `${r.id} left live past its end at ${at.toISOString()}`).toBeGreaterThan(w.now);
        if (r.autoRenew && next === undefined)
          expect(ms(r.endTime), `${r.id} auto-renewing and due, not renewed`).toBeGreaterThan(
            w.now + HORIZON_MS,
          );
      }
    }
  }
  if (w.claim) {
    // Every message was delivered and done: no live term is left claimed (hidden from the runs of
    // the next hour) after its renewal or expiry was worked on.
    const ids = [...(await allTerms(w)).values()]
      .flat()
      .filter((r) => r.endedAt === null)
      .map((r) => r.id);
    for (const id of ids) {
      const row = await env.DB.prepare("SELECT renewal_queued_until AS q FROM subscriptions WHERE id = ?")
        .bind(id)
        .first<{ q: number | null }>();
      if (row?.q != null && row.q > w.now)
        w.log.push(`  (live ${id.slice(-6)} left claimed until ${new Date(row.q).toISOString()})`);
      expect(row?.q != null && row.q > w.now, `live ${id} left claimed after the pass`).toBe(false);
    }
  }
}

function expectedPurchase(s: Extract<Step, { kind: "buy" }>, now: number) {
  const d = s.d;
  const startOf = (raw: number) => (noonDown(raw) > now ? noonDown(raw) : now);
  switch (d.kind) {
    case "period": {
      const p = PERIODS[d.p]!;
      return { object: { period: p.text }, start: now, end: noonUp(addP(now, p)) };
    }
    case "end": {
      const e = now + d.hours * HOUR;
      return { object: { end_time: new Date(e) }, start: now, end: noonUp(e) };
    }
    case "start+period": {
      const p = PERIODS[d.p]!;
      const st = now + d.off * HOUR;
      return {
        object: { start_time: new Date(st), period: p.text },
        start: startOf(st),
        end: noonUp(addP(st, p)),
      };
    }
    case "start+end": {
      const st = now + d.off * HOUR;
      const e = st + d.len * HOUR;
      return {
        object: { start_time: new Date(st), end_time: new Date(e) },
        start: startOf(st),
        end: noonUp(e),
      };
    }
    case "period until end": {
      const p = PERIODS[d.p]!;
      const e = now + d.hours * HOUR;
      const raw = subP(e, p);
      if (e <= Math.max(raw, now))
        return { object: { end_time: new Date(e), period: p.text }, error: true as const };
      return { object: { end_time: new Date(e), period: p.text }, start: startOf(raw), end: noonUp(e) };
    }
  }
}

async function runStep(w: World, s: Step): Promise<void> {
  const { t } = w;
  const now = new Date(w.now);
  if (s.kind === "advance") {
    w.now += s.hours * HOUR + (s.minutes ?? 0) * 60_000;
    if (s.beforeNoon !== undefined) {
      const to = noonUp(w.now + 1) - s.beforeNoon * 60_000;
      w.now = to > w.now ? to : to + DAY;
    }
    w.log.push(
      `advance ${s.hours}h${s.minutes ? ` ${s.minutes}m` : ""} to ${new Date(w.now).toISOString()}; cron${s.twice ? " delivered twice" : ""}${s.late ? " late" : ""}`,
    );
    const late = s.late === true && w.claim === true;
    // A run while earlier messages still wait passes over what they claimed, sends the rest; then all arrive.
    if (!late && w.pending.length > 0) await cron(w, s.twice, true);
    await cron(w, s.twice, late);
    return;
  }
  if (s.kind === "reprice") {
    const p = PRODUCTS.find((p) => p.id === s.product)!;
    w.log.push(`reprice ${s.product} to 0.0${s.unit}/h`);
    await expectOk(
      call("PUT", `/v1/products/${p.id}`, {
        token: t.operator,
        body: {
          name: p.id,
          kind: p.kind,
          unit: p.unit,
          unit_price: `0.0${s.unit}`,
          currency: "EUR",
          quota_resource: `stratus.${p.id}`,
          aliases: [...p.aliases],
        },
      }),
    );
    w.unit[s.product] = BigInt(s.unit);
    return;
  }
  if (s.kind === "buy") {
    const e = expectedPurchase(s, w.now);
    const customer = t.customers[s.customer]!;
    const object = { customer, resource: s.product, amount: s.amount, auto_renew: s.autoRenew, ...e.object };
    w.log.push(`buy ${JSON.stringify(object)} at ${now.toISOString()}`);
    if ("error" in e) {
      await expect(plan(env, t.partnerId, [object], now)).rejects.toThrow();
      return;
    }
    const planned = await plan(env, t.partnerId, [object], now);
    const ids = assignIds(planned.subscriptions);
    const bought = await buy(env, t.partnerId, planned.subscriptions, ids, now);
    const r = bought.subscriptions[0]!;
    w.log.push(`  -> ${r.id.slice(-6)} ${r.startTime}..${r.endTime}`);
    expect(ms(r.startTime), `purchase ${r.id} starts`).toBe(e.start);
    expect(ms(r.endTime), `purchase ${r.id} ends`).toBe(e.end);
    w.made.set(r.id, { kind: "purchase", at: w.now, unit: w.unit[r.product]! });
    w.chains.push({ root: r.id, customer: s.customer, product: s.product, amount: s.amount });
    return;
  }
  if (w.chains.length === 0) return;
  const chain = w.chains[s.chain % w.chains.length]!;
  const terms = await termsOf(chain.root);
  const target = terms[s.term % terms.length]!;
  if (s.kind === "cancel") {
    w.log.push(
      `cancel ${target.id.slice(-6)} (term ${terms.indexOf(target)} of ${terms.length}) at ${now.toISOString()}`,
    );
    const out = await subscriptionObject(env, target.id).cancel(now);
    expect(out.ok, JSON.stringify(out)).toBe(true);
    const after = await get(target.id);
    expect(after.endedAt).not.toBeNull();
    if (target.endedAt === null)
      expect(after).toMatchObject({ endReason: "cancelled", endedAt: now.toISOString() });
    return;
  }
  if (s.kind === "auto_renew") {
    w.log.push(
      `auto_renew ${s.value} on ${target.id.slice(-6)} (term ${terms.indexOf(target)} of ${terms.length})`,
    );
    // Nothing would renew: the term has ended with nothing after it, or its chain's last term has
    // ended (the chain was cancelled after it; a term whose purchase was undone ends the walk).
    let last = target;
    for (const r of terms.slice(terms.indexOf(target) + 1)) {
      if (r.endReason === "failed") break;
      last = r;
    }
    const over =
      (target.endedAt !== null && target.nextId === null) || (last !== target && last.endedAt !== null);
    const refused = s.value && !target.autoRenew && over;
    try {
      await setAutoRenew(env, target.id, s.value);
      expect(refused, "auto_renew on where nothing would renew is refused").toBe(false);
    } catch (error) {
      if (!(error instanceof AppError) || !refused) throw error;
      return;
    }
    const after = await termsOf(chain.root);
    for (const r of after.slice(terms.indexOf(target))) {
      // A later term ended with nothing after it cannot be turned on (the walk stops there).
      if (s.value && !r.autoRenew && r.endedAt !== null && r.nextId === null && r.id !== target.id) continue;
      expect(r.autoRenew, `auto_renew of ${r.id} follows ${target.id}`).toBe(s.value);
    }
    return;
  }
  // extend
  const last = terms.at(-1)!;
  const input =
    s.input === "none"
      ? {}
      : "p" in s.input
        ? { period: PERIODS[s.input.p]!.text }
        : { end_time: new Date(ms(last.endTime) + s.input.endH * HOUR) };
  w.log.push(
    `extend ${target.id.slice(-6)} (term ${terms.indexOf(target)} of ${terms.length}) ${JSON.stringify(input)} at ${now.toISOString()}`,
  );
  const start = Math.max(ms(last.endTime), w.now);
  let expectedEnd: number | "refused";
  if (last.endReason === "cancelled") expectedEnd = "refused";
  else if ("period" in input) expectedEnd = noonUp(addP(start, periodOf(input.period!)!));
  else if ("end_time" in input)
    expectedEnd = input.end_time!.getTime() <= start ? "refused" : noonUp(input.end_time!.getTime());
  else expectedEnd = repeated(last, start);
  let r: SubscriptionRecord;
  try {
    r = await extend(
      env,
      partnerScope(t.partnerId),
      target.id,
      input,
      { subscription: subscriptionIdBeside(last.id), order: uuidv7() },
      now,
    );
  } catch (error) {
    w.log.push(`  -> refused: ${(error as Error).message}`);
    if (!(error instanceof AppError) || expectedEnd !== "refused") throw error;
    return;
  }
  w.log.push(`  -> ${r.id.slice(-6)} ${r.startTime}..${r.endTime}`);
  expect(expectedEnd, `extension of ${last.id} (${last.endReason}) should have been refused`).not.toBe(
    "refused",
  );
  expect(r.previousId, "the extension follows the chain's last term").toBe(last.id);
  expect(ms(r.startTime), `extension ${r.id} starts`).toBe(start);
  expect(ms(r.endTime), `extension ${r.id} ends`).toBe(expectedEnd);
  expect(r.autoRenew, "an extension takes auto_renew from the term it follows").toBe(last.autoRenew);
  w.made.set(r.id, { kind: "extension", at: w.now, unit: w.unit[r.product]! });
}

/** Every term charged once at its price, contiguous chains, quota = live chains once. */
async function checkBooks(w: World): Promise<void> {
  const { t } = w;
  const charges = await env.DB.prepare(
    "SELECT key, kind, subscription_id, amount_minor, period_start, period_end, quantity FROM charges WHERE partner_id = ?",
  )
    .bind(t.partnerId)
    .all<{
      key: string;
      kind: string;
      subscription_id: string;
      amount_minor: number;
      period_start: string;
      period_end: string;
      quantity: number;
    }>();
  const bySub = new Map<string, typeof charges.results>();
  for (const c of charges.results) bySub.set(c.subscription_id, [...(bySub.get(c.subscription_id) ?? []), c]);
  const seen = new Set<string>();
  const held = new Map<string, number>();
  for (const chain of w.chains) {
    const terms = await termsOf(chain.root);
    let live = false;
    for (const [i, r] of terms.entries()) {
      seen.add(r.id);
      // Live: not ended and not over (README, "Quota held once per chain"); every advance of the
      // clock runs the cron, so a term over with nothing live after it has been expired by then.
      live ||= r.endedAt === null && ms(r.endTime) > w.now;
      expect(r.endReason, `${r.id} is not failed`).not.toBe("failed");
      expect(r.amount, `${r.id} keeps the chain's amount`).toBe(chain.amount);
      expect(ms(r.endTime), `${r.id} ends after it starts`).toBeGreaterThan(ms(r.startTime));
      expect(mod(ms(r.endTime) - NOON, DAY), `${r.id} ends at noon`).toBe(0);
      const made = w.made.get(r.id);
      expect(made, `${r.id} was bought by the test or the cron`).toBeDefined();
      if (i > 0) {
        const prev = terms[i - 1]!;
        expect(r.previousId).toBe(prev.id);
        expect(r.rootId).toBe(chain.root);
        // Contiguous: from the end of the term before, or from when it was bought if the chain had lapsed.
        const from = made!.kind === "renewal" ? ms(prev.endTime) : Math.max(ms(prev.endTime), made!.at);
        expect(ms(r.startTime), `${r.id} starts where the chain ends`).toBe(from);
      }
      const lines = bySub.get(r.id) ?? [];
      expect(lines, `${r.id}: one charge line, no reversal`).toHaveLength(1);
      expect(lines[0]).toMatchObject({
        key: `purchase:${r.id}`,
        kind: made!.kind,
        amount_minor: priceOf(made!.unit, chain.amount, ms(r.startTime), ms(r.endTime)),
        period_start: r.startTime,
        period_end: r.endTime,
        quantity: chain.amount,
      });
    }
    if (live) {
      const key = `${chain.customer} ${chain.product}`;
      held.set(key, (held.get(key) ?? 0) + chain.amount);
    }
  }
  for (const c of charges.results)
    expect(seen.has(c.subscription_id), `line ${c.key} is a term's`).toBe(true);
  for (const [i] of t.customers.entries()) {
    for (const product of ["cpu", "mem"]) {
      const q = await usageOf(t, i, product);
      expect(q.pending, `customer ${i} ${product} pending`).toBe(0);
      expect(q.usage, `customer ${i} ${product} usage = live chains once`).toBe(
        held.get(`${i} ${product}`) ?? 0,
      );
    }
  }
}

/** Runs per test run (~0.4 s each). */
const RUNS = 60;

/** One sequence of steps from a base instant; `claim`: the cron claims what it pages. */
const sequence =
  (claim: boolean) =>
  async (base: number, minutes: number, steps: Step[]): Promise<void> => {
    const t = await tenant({ customers: 2 });
    await withCatalog(t, 1000);
    const w: World = {
      t,
      now: Date.parse(BASES[base]!) + (minutes % 3 === 0 ? 0 : minutes * 60_000),
      chains: [],
      made: new Map(),
      unit: { ...UNIT },
      log: [],
      claim,
      pending: [],
    };
    try {
      for (const s of steps) {
        await runStep(w, s);
        // A late run's messages wait for the step after it; delivered, the next run follows them.
        if (s.kind === "advance" && s.late) continue;
        if (w.pending.length > 0) {
          w.log.push("cron");
          await cron(w);
        }
        await checkBooks(w);
      }
      // The end: every chain stops renewing, and once all is over the cron expires what is left.
      if (w.pending.length > 0) {
        await cron(w);
        await checkBooks(w);
      }
      let latest = w.now;
      for (const c of w.chains) {
        const terms = await termsOf(c.root);
        latest = Math.max(latest, ...terms.map((r) => ms(r.endTime)));
        const last = terms.at(-1)!;
        if (last.autoRenew) await setAutoRenew(env, c.root, false);
      }
      w.now = latest + DAY;
      w.log.push(`auto_renew off everywhere; advance to ${new Date(w.now).toISOString()}; cron`);
      await cron(w);
      await checkBooks(w);
      await expectBooksBalance(t);
    } catch (error) {
      // Shrinking does not keep the clock's story: the steps and what each did are what to read.
      const shown = w.log.filter(
        (l, i) => !(l.includes("cron renewed") && w.log[i + 1]?.includes("cron renewed")),
      );
      throw new Error(`${error}\nsteps: ${JSON.stringify(steps)}\n${shown.join("\n")}`);
    }
  };

/** The claim's variant also runs the cron minutes apart, as it runs every five minutes. */
const claimStep: fc.Arbitrary<Step> = fc.oneof(
  { weight: 4, arbitrary: step },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("advance" as const),
      hours: fc.constant(0),
      minutes: fc.constantFrom(5, 10, 30, 55, 59, 60, 65),
      twice: fc.boolean(),
      late: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("advance" as const),
      hours: fc.constant(0),
      beforeNoon: fc.constantFrom(0, 1, 3, 5),
      twice: fc.boolean(),
      late: fc.boolean(),
    }),
  },
);

/** Runs of the claim's variant per test run. */
const CLAIM_RUNS = 30;

describe("chains over simulated time", () => {
  it("every term contiguous, charged once at its price; quota held once per live chain; nothing due left", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.nat(BASES.length - 1),
        fc.integer({ min: 0, max: 24 * 60 - 1 }),
        fc.array(step, { minLength: 3, maxLength: 14 }),
        sequence(false),
      ),
      {
        numRuns: RUNS,
        interruptAfterTimeLimit: 70_000,
        endOnFailure: true,
        // Found at a soak (seed 402388204): a chain's first term expires while its last, over and
        // auto-renewing, has its renewal created but not yet in the read model; that renewal is live.
        examples: [
          [
            5,
            887,
            [
              { kind: "extend", chain: 3, term: 18, input: "none" },
              { kind: "extend", chain: 0, term: 4, input: { endH: 1336 } },
              {
                kind: "buy",
                customer: 1,
                product: "mem",
                amount: 2,
                d: { kind: "period", p: 6 },
                autoRenew: true,
              },
              { kind: "advance", hours: 10 },
              {
                kind: "buy",
                customer: 1,
                product: "mem",
                amount: 1,
                d: { kind: "start+end", off: 879, len: 9 },
                autoRenew: false,
              },
              { kind: "advance", hours: 720 },
              { kind: "cancel", chain: 12, term: 3 },
              { kind: "advance", hours: 556 },
              { kind: "cancel", chain: 3, term: 3 },
              { kind: "cancel", chain: 19, term: 17 },
              {
                kind: "buy",
                customer: 0,
                product: "cpu",
                amount: 2,
                d: { kind: "end", hours: 999 },
                autoRenew: true,
              },
            ] as never,
          ],
        ],
      },
    );
  }, 90_000);

  it("the same with the cron claiming what it pages, as the real one does", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.nat(BASES.length - 1),
        fc.integer({ min: 0, max: 24 * 60 - 1 }),
        fc.array(claimStep, { minLength: 3, maxLength: 14 }),
        sequence(true),
      ),
      {
        numRuns: CLAIM_RUNS,
        interruptAfterTimeLimit: 70_000,
        endOnFailure: true,
        examples: [
          // A term due minutes before its end, not renewing: left as it was, its claim given back.
          [
            1,
            0,
            [
              {
                kind: "buy",
                customer: 0,
                product: "cpu",
                amount: 1,
                d: { kind: "period", p: 1 },
                autoRenew: false,
              },
              { kind: "advance", hours: 48 },
              { kind: "advance", hours: 0, beforeNoon: 3 },
              { kind: "advance", hours: 0, minutes: 5 },
            ],
          ],
          // The same with the run's messages late: an auto_renew set meanwhile, then the next run.
          [
            1,
            0,
            [
              {
                kind: "buy",
                customer: 0,
                product: "cpu",
                amount: 1,
                d: { kind: "period", p: 1 },
                autoRenew: false,
              },
              { kind: "advance", hours: 48 },
              { kind: "advance", hours: 0, beforeNoon: 3, late: true },
              { kind: "auto_renew", chain: 0, term: 0, value: true },
              { kind: "advance", hours: 0, minutes: 5, late: true },
              { kind: "cancel", chain: 0, term: 1 },
              { kind: "advance", hours: 0, minutes: 10 },
            ],
          ],
        ],
      },
    );
  }, 90_000);
});
