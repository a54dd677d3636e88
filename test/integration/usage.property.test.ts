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
 * each once, and sum to its metered charge.
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

const euros = (minor: bigint) => `${minor / 100n}.${(minor % 100n).toString().padStart(2, "0")}`;

describe("usage lines through the objects (property)", () => {
  it("are the lines of the cloud's run history, each once, summing to its metered charge", async () => {
    const t = await tenant({ customers: 1 });
    await withCatalog(t);
    let linesSeen = 0;
    await fc.assert(
      fc.asyncProperty(life, async ({ steps, begin }) => {
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
            case "stop":
              await object.run(s.kind, at);
              break;
            // Quota moves need D1 for the commission; those wait for it.
            case "amount":
              if (!down) await object.changeAmount(s.quantity, at);
              break;
            case "cancel":
              if (!down) await object.cancel(at);
              break;
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
      }),
      { numRuns: 25 },
    );
    console.log(JSON.stringify({ linesSeen }));
    // Lives that never ran write nothing: the property is only as good as the lines it saw.
    expect(linesSeen).toBeGreaterThanOrEqual(25);
    await expectBooksBalance(t);
  });
});
