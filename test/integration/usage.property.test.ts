import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { closeMonthOf } from "../../src/app/usage";
import { monthOf } from "../../src/domain/charges";
import { meteredCharge, usageLines } from "../../src/domain/usage";
import {
  type SubscriptionObject,
  subscriptionObject,
  subscriptionShard,
} from "../../src/objects/subscription-object";
import { expectBooksBalance } from "../books";
import { call, expectOk, failingD1, tenant, withCatalog } from "../helpers";

/**
 * Random lives of CaaS clouds, played on their objects: whatever sequence of start, stop,
 * quantity change, cancel, month close (delivered twice), eviction and D1 outage happens, once
 * the pushes have landed the cloud's usage lines in D1 are exactly the lines of its run history,
 * each once, and sum to its metered charge; and that charge, with its running seconds, is the one
 * the actions asked for (`Asked`: an oracle of the intervals and the month rounding kept apart
 * from src/domain), so a history that agrees with itself but not with the starts, stops and size
 * changes is found.
 */

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;

type Action =
  | { kind: "start" | "stop" | "cancel" | "month end" | "evict" | "D1 down" }
  | { kind: "amount"; quantity: number };

/** Each action comes after a while: minutes to hours mostly, sometimes past a month's end. */
const step = fc.record({
  after: fc.oneof(
    { arbitrary: fc.integer({ min: 0, max: 180 * MINUTE }), weight: 4 },
    { arbitrary: fc.integer({ min: 0, max: 40 * DAY }), weight: 1 },
  ),
  action: fc.oneof(
    { arbitrary: fc.constantFrom({ kind: "start" as const }, { kind: "stop" as const }), weight: 4 },
    {
      arbitrary: fc.record({
        kind: fc.constant("amount" as const),
        quantity: fc.integer({ min: 1, max: 6 }),
      }),
      weight: 2,
    },
    { arbitrary: fc.constant({ kind: "month end" as const }), weight: 2 },
    {
      arbitrary: fc.constantFrom(
        { kind: "cancel" as const },
        { kind: "evict" as const },
        { kind: "D1 down" as const },
      ),
      weight: 1,
    },
  ) as fc.Arbitrary<Action>,
});

const life = fc.record({
  steps: fc.array(step, { minLength: 4, maxLength: 16 }),
  begin: fc.integer({ min: Date.UTC(2040, 0, 1), max: Date.UTC(2045, 0, 1) }),
});

/**
 * What the actions asked of the cloud, kept apart from src/domain: its running intervals (a start
 * opens one at the cloud's size, a stop or cancel closes it, a size change while running splits it)
 * and the charge they make. Seconds are whole second boundaries crossed; each UTC month's
 * Σ quantity × seconds × price / 3600 is rounded half up once (README, "Usage rounding").
 */
interface Asked {
  runs: Array<{ start: number; end: number | null; quantity: number }>;
  quantity: number;
  ended: boolean;
}

function askedCharge(asked: Asked, price: bigint, now: number): { seconds: bigint; minor: bigint } {
  const months = new Map<number, bigint>();
  let seconds = 0n;
  const secs = (a: number, b: number) => BigInt(Math.floor(b / 1000) - Math.floor(a / 1000));
  for (const run of asked.runs) {
    const end = run.end ?? now;
    let from = run.start;
    while (from < end) {
      const d = new Date(from);
      const next = Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
      const to = Math.min(end, next);
      const key = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
      months.set(key, (months.get(key) ?? 0n) + BigInt(run.quantity) * secs(from, to) * price);
      seconds += secs(from, to);
      from = to;
    }
  }
  let minor = 0n;
  for (const exact of months.values()) minor += exact / 3600n + (exact % 3600n >= 1800n ? 1n : 0n);
  return { seconds, minor };
}

const euros = (minor: bigint) => `${minor / 100n}.${(minor % 100n).toString().padStart(2, "0")}`;

describe("usage lines through the objects (property)", () => {
  it("are the lines of the cloud's run history, each once, summing to its metered charge", async () => {
    let t = await tenant({ customers: 1 });
    await withCatalog(t);
    const tenants = [t];
    let lives = 0;
    let linesSeen = 0;
    await fc.assert(
      fc.asyncProperty(life, async ({ steps, begin }) => {
        // A new tenant every 100 lives: one partner key's 600 requests a minute, and one
        // customer's quota, would refuse a longer run (a soak's) with 429s and 409s of their own.
        if (++lives % 100 === 0) {
          t = await tenant({ customers: 1 });
          await withCatalog(t);
          tenants.push(t);
        }
        const bought = await expectOk(
          call("POST", "/v1/subscriptions/", {
            token: t.partnerKey,
            body: { objects: [{ customer: t.customers[0], resource: "cumulus", amount: 1 }] },
          }),
          201,
        );
        const id: string = bought.objects[0].id;
        const object = subscriptionObject(env, id);
        let now = begin;
        let down = false;
        const asked: Asked = { runs: [], quantity: 1, ended: false };
        const open = () => asked.runs.at(-1)?.end === null;
        const recover = async () => {
          // A new instance sees D1 again; its alarm pushes what the old one could not.
          await object.get();
          await evictDurableObject(subscriptionShard(env, id));
          await runDurableObjectAlarm(subscriptionShard(env, id));
          down = false;
        };
        for (const { after, action: s } of steps) {
          now += after;
          const at = new Date(now);
          switch (s.kind) {
            case "start":
            case "stop": {
              const out = await object.run(s.kind, at);
              expect(out.ok, JSON.stringify(out)).toBe(!asked.ended);
              if (asked.ended) break;
              if (s.kind === "start" && !open())
                asked.runs.push({ start: now, end: null, quantity: asked.quantity });
              const last = asked.runs.at(-1);
              if (s.kind === "stop" && last && open()) last.end = now;
              break;
            }
            // Quota moves need D1 for the commission; those wait for it.
            case "amount": {
              if (down) break;
              const out = await object.changeAmount(s.quantity, at);
              // Refused only once it ended, or over the customer's quota (the lives share one customer).
              if (!out.ok) {
                expect(asked.ended || out.error.kind === "over_limit", JSON.stringify(out)).toBe(true);
                break;
              }
              if (s.quantity !== asked.quantity && open()) {
                (asked.runs.at(-1) as Asked["runs"][number]).end = now;
                asked.runs.push({ start: now, end: null, quantity: s.quantity });
              }
              asked.quantity = s.quantity;
              break;
            }
            case "cancel": {
              if (down) break;
              const out = await object.cancel(at);
              expect(out.ok, JSON.stringify(out)).toBe(true);
              const last = asked.runs.at(-1);
              if (last && open()) last.end = now;
              asked.ended = true;
              break;
            }
            case "month end": {
              const message = { subscription: id, closeMonth: monthOf(at).start.toISOString() };
              await closeMonthOf(env, message);
              await closeMonthOf(env, message);
              break;
            }
            case "evict":
              await recover();
              break;
            case "D1 down":
              await runInDurableObject(subscriptionShard(env, id), (instance: SubscriptionObject) => {
                const own = instance as unknown as { env: Env };
                own.env = { ...own.env, DB: failingD1(own.env.DB, "prepare", "batch") };
              });
              down = true;
              break;
          }
        }
        if (down) await recover();
        now += 60 * MINUTE;
        await object.run("stop", new Date(now));
        const last = asked.runs.at(-1);
        if (last && open()) last.end = now;
        const r = await object.get();
        if (!r) throw new Error("the cloud is gone");
        const price = BigInt(r.unitPriceMinor);
        const expected = usageLines(id, r.runs, price);
        const written = await env.DB.prepare(
          "SELECT key, amount_minor, period_start, month FROM charges WHERE subscription_id = ? AND kind = 'usage' ORDER BY period_start",
        )
          .bind(id)
          .all<{ key: string; amount_minor: number; period_start: string; month: string }>();
        // The lines of the months the history settled (`settledRuns`) are summed, the others matched.
        const through = r.settledRuns?.through ?? Number.NEGATIVE_INFINITY;
        const kept = written.results.filter((c) => Date.parse(c.period_start) >= through);
        const settled = written.results
          .filter((c) => Date.parse(c.period_start) < through)
          .reduce((n, c) => n + BigInt(c.amount_minor), 0n);
        expect(settled).toBe(BigInt(r.settledRuns?.billedMinor ?? "0"));
        expect(kept.map((c) => [c.key, BigInt(c.amount_minor)])).toEqual(
          expected.map((l) => [l.key, l.amountMinor]),
        );
        for (const c of written.results) expect(c.month).toBe(c.period_start.slice(0, 7));
        linesSeen += written.results.length;
        const total = settled + meteredCharge(id, r.runs, price, now);
        expect(settled + expected.reduce((n, l) => n + l.amountMinor, 0n)).toBe(total);
        const usage = await expectOk(call("GET", `/v1/subscriptions/${id}/usage`, { token: t.partnerKey }));
        expect(usage.charge).toBe(euros(total));
        // The charge is what the actions asked for: each start to its stop, at the size in force.
        const want = askedCharge(asked, price, now);
        const seconds = r.runs.reduce(
          (n, i) => n + BigInt(Math.floor((i.end ?? now) / 1000) - Math.floor(i.start / 1000)),
          BigInt(r.settledRuns?.seconds ?? "0"),
        );
        expect(
          { seconds, charge: total },
          `as asked: ${JSON.stringify(asked.runs)}; history ${JSON.stringify(r.runs)}`,
        ).toEqual({ seconds: want.seconds, charge: want.minor });
      }),
      { numRuns: 25 },
    );
    console.log(JSON.stringify({ linesSeen }));
    // Lives that never ran write nothing: the property is only as good as the lines it saw.
    expect(linesSeen).toBeGreaterThanOrEqual(25);
    for (const each of tenants) await expectBooksBalance(each);
  });
});
