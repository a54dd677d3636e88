import { evictDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import fc from "fast-check";
import { afterEach, describe, expect, it, vi } from "vitest";
import { disarmFaults, type FaultStep } from "../../src/domain/faults";
import type { SubscriptionRecord } from "../../src/domain/subscriptions";
import { ledgerOf } from "../../src/objects/quota-ledger";
import { subscriptionShard } from "../../src/objects/subscription-object";
import { expectBooksBalance } from "../books";
import { call, expectOk, keptQueue, tenantWithCatalog } from "../helpers";
import {
  checkChains,
  cron,
  deliverOperations,
  deliverRenewals,
  faulted,
  ms,
  opRefOf,
  settle,
  stopNow,
  termsOf,
  type World,
} from "../renewal-world";

/**
 * A books soak over renewals on a simulated clock: random sequences of cron runs at random gaps
 * (minutes to 45 days: outages), the renewals queue delivering some of what it holds (a partial
 * batch, redelivered at once or not, with a fault armed or D1 failing its writes), hand
 * extensions, cancels, `PATCH auto_renew`, `?do=auto_renew` toggles (each at once or accepted as
 * an operation that waits in its queue), daily and monthly terms, evicted shards and ledgers, and
 * the customer's limit and the product's price changed by the operator.
 * After each sequence the queues are drained and the README's recovery run; then the README's
 * invariants hold: the books balance (`expectBooksBalance`), each chain's terms follow one another
 * with no gap and no overlap, nothing due is left live, and no chain renews past a stop the partner
 * was answered for (beyond the renewal a run had taken up, or planned, before the stop).
 */

const MINUTE = 60_000;

const FAULTS: Array<FaultStep | "d1"> = [
  "renewal.planned",
  "purchase.issued",
  "purchase.created",
  "purchase.ordered",
  "purchase.accepted",
  "subscription.step",
  "subscription.moved",
  "subscription.committed",
  "request.answered",
  "d1",
];

type Step =
  | { k: "advance"; minutes: number }
  | { k: "deliver"; count: number; twice: boolean; fault: FaultStep | "d1" | null }
  | { k: "buy"; daily: boolean; autoRenew: boolean }
  /** The operator sets the customer's cpu limit (below what its chains hold, too) and cpu's price. */
  | { k: "catalog"; limit: number; price: string }
  | { k: "extend"; chain: number; term: number; fault: FaultStep | "d1" | null }
  | { k: "cancel"; chain: number; async: boolean }
  | { k: "patch"; chain: number; term: number; value: boolean; async: boolean }
  | { k: "toggle"; chain: number; term: number; async: boolean }
  /** A renewal message whose every delivery died: the queue holds it no more. */
  | { k: "lose"; index: number }
  | { k: "operations"; count: number }
  | { k: "evict"; chain: number; term: number; ledger: boolean };

const fault = fc.option(fc.constantFrom(...FAULTS), { freq: 3 });
const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      k: fc.constant("advance" as const),
      minutes: fc.oneof(
        fc.integer({ min: 1, max: 60 }),
        fc.integer({ min: 60, max: 3 * 1_440 }),
        fc.integer({ min: 1_440, max: 45 * 1_440 }),
      ),
    }),
  },
  {
    weight: 5,
    arbitrary: fc.record({
      k: fc.constant("deliver" as const),
      count: fc.integer({ min: 1, max: 6 }),
      twice: fc.boolean(),
      fault,
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ k: fc.constant("buy" as const), daily: fc.boolean(), autoRenew: fc.boolean() }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      k: fc.constant("catalog" as const),
      limit: fc.integer({ min: 0, max: 12 }),
      price: fc.constantFrom("0.02", "0.05", "0.11"),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ k: fc.constant("extend" as const), chain: fc.nat(9), term: fc.nat(60), fault }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ k: fc.constant("cancel" as const), chain: fc.nat(9), async: fc.boolean() }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      k: fc.constant("patch" as const),
      chain: fc.nat(9),
      term: fc.nat(60),
      value: fc.boolean(),
      async: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      k: fc.constant("toggle" as const),
      chain: fc.nat(9),
      term: fc.nat(60),
      async: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.record({ k: fc.constant("lose" as const), index: fc.nat(20) }) },
  {
    weight: 2,
    arbitrary: fc.record({ k: fc.constant("operations" as const), count: fc.integer({ min: 1, max: 3 }) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      k: fc.constant("evict" as const),
      chain: fc.nat(9),
      term: fc.nat(60),
      ledger: fc.boolean(),
    }),
  },
);

async function runStep(w: World, s: Step): Promise<void> {
  const { t } = w;
  if (s.k === "advance") {
    w.now += s.minutes * MINUTE;
    vi.setSystemTime(w.now);
    w.log.push(`advance ${s.minutes}m to ${new Date(w.now).toISOString()}; cron`);
    await cron(w);
    return;
  }
  if (s.k === "deliver") {
    w.log.push(`deliver ${s.count}${s.fault ? ` with ${s.fault}` : ""}`);
    await faulted(w, s.fault, (e) => deliverRenewals(w, s.count, e, s.twice));
    return;
  }
  if (s.k === "lose") {
    const [lost] = w.renewals.sent.splice(s.index % Math.max(1, w.renewals.sent.length), 1);
    w.log.push(`lose ${lost ? JSON.stringify(lost) : "nothing"}`);
    return;
  }
  if (s.k === "operations") {
    await deliverOperations(w, s.count);
    return;
  }
  if (s.k === "catalog") {
    w.log.push(`cpu limit ${s.limit}, price ${s.price}`);
    await expectOk(
      call("PUT", `/v1/customers/${t.customers[0]}/quotas`, {
        token: t.operator,
        body: { resource: "stratus.cpu", limit: s.limit },
      }),
    );
    const cpu = { name: "cpu", kind: "timed", unit: "GHz", currency: "EUR", quota_resource: "stratus.cpu" };
    await expectOk(
      call("PUT", "/v1/products/cpu", {
        token: t.operator,
        body: { ...cpu, unit_price: s.price, aliases: [] },
      }),
    );
    return;
  }
  if (s.k === "buy") {
    const r = await call("POST", "/v1/subscriptions/", {
      token: t.partnerKey,
      env: w.behind,
      body: {
        objects: [
          {
            customer: t.customers[0],
            resource: "cpu",
            amount: 1 + w.roots.length,
            period: s.daily ? "1 day" : "1 month",
            auto_renew: s.autoRenew,
          },
        ],
      },
    });
    w.log.push(`buy ${s.daily ? "daily" : "monthly"} auto_renew ${s.autoRenew}: ${r.status}`);
    // Over the limit the catalog step set: refused (README: 409 `quota-exceeded`), nothing bought.
    if (r.status === 409 && r.body?.type === "https://stratus.dev/problems/quota-exceeded") return;
    expect(r.status, r.text).toBe(201);
    w.roots.push(r.body.objects[0].id);
    return;
  }
  if (w.roots.length === 0) return;
  const chain = s.chain % w.roots.length;
  const root = w.roots[chain] as string;
  const terms = await termsOf(root);
  if (s.k === "evict") {
    const target = terms[s.term % terms.length] as SubscriptionRecord;
    w.log.push(`evict ${s.ledger ? "ledger" : target.id.slice(-6)}`);
    try {
      await evictDurableObject(
        s.ledger ? ledgerOf(env, t.customers[0] as string) : subscriptionShard(env, target.id),
      );
    } catch (error) {
      // Not running: there is nothing to evict.
      if (!String(error).includes("not currently running")) throw error;
    }
    return;
  }
  const stops = w.stops.get(chain) ?? [];
  if (s.k === "extend") {
    // A stopped chain is not extended by hand: what follows its stop is the cron's alone.
    if (stops.length > 0) return;
    const target = terms[s.term % terms.length] as SubscriptionRecord;
    const end = terms.filter((r) => r.endReason !== "failed").at(-1);
    if (end && !end.autoRenew && ms(end.endTime) <= w.now) w.lapsed.add(end.id);
    const r = await faulted(w, s.fault, (e) =>
      call("POST", `/v1/subscriptions/${target.id}/action/?do=extend`, { token: t.partnerKey, env: e }),
    );
    w.log.push(
      `extend ${target.id.slice(-6)}${s.fault ? ` with ${s.fault}` : ""}: ${r.status} ${r.body?.id?.slice?.(-6) ?? r.text.slice(0, 120)}`,
    );
    if (r.status < 500 && s.fault === null) expect([200, 409], r.text).toContain(r.status);
    return;
  }
  const last = terms.filter((r) => r.endReason !== "failed").at(-1) ?? (terms[0] as SubscriptionRecord);
  const target = s.k === "cancel" ? last : (terms[s.term % terms.length] as SubscriptionRecord);
  const async = "async" in s && s.async;
  const headers: Record<string, string> = async ? { prefer: "respond-async" } : {};
  const r =
    s.k === "cancel"
      ? await call("DELETE", `/v1/subscriptions/${target.id}/`, {
          token: t.partnerKey,
          env: w.behind,
          headers,
        })
      : s.k === "patch"
        ? await call("PATCH", `/v1/subscriptions/${target.id}/`, {
            token: t.partnerKey,
            env: w.behind,
            headers,
            body: { auto_renew: s.value },
          })
        : await call("POST", `/v1/subscriptions/${target.id}/action/?do=auto_renew`, {
            token: t.partnerKey,
            env: w.behind,
            headers,
          });
  w.log.push(
    `${s.k} ${"value" in s ? s.value : ""} ${target.id.slice(-6)}${async ? " async" : ""}: ${r.status}`,
  );
  expect(r.status, r.text).toBeLessThan(500);
  // A toggle's value: its answer, or, queued, the flag flipped as read when it was accepted (what
  // the claim takes it for); run on the chain's last term it flips the flag as it then stands, so
  // `checkChains` reads what it set (`appliedOn`).
  const toggled =
    s.k !== "toggle"
      ? undefined
      : r.status === 202
        ? JSON.parse(
            (
              await env.DB.prepare("SELECT payload FROM operations WHERE op_ref = ?")
                .bind(opRefOf(r))
                .first<{ payload: string }>()
            )?.payload ?? "{}",
          ).value
        : r.body?.auto_renew;
  const stopping = s.k === "cancel" || (s.k === "patch" && !s.value) || toggled === false;
  const starting = (s.k === "patch" && s.value) || toggled === true;
  if (starting && (r.status === 200 || r.status === 202)) w.stops.delete(chain);
  if ((starting || s.k === "toggle") && r.status === 202)
    w.ons.set(chain, [...(w.ons.get(chain) ?? []), opRefOf(r)]);
  const cancelled = s.k === "cancel" ? target.id : undefined;
  if (stopping && r.status === 200)
    w.stops.set(chain, [...stops, await stopNow(w, chain, root, undefined, cancelled)]);
  if (stopping && r.status === 202)
    w.stops.set(chain, [...stops, await stopNow(w, chain, root, opRefOf(r), cancelled)]);
}

let epoch = 0;

describe("renewals soak: outages, partial and repeated deliveries, hand changes and faults", () => {
  afterEach(() => {
    disarmFaults();
    vi.useRealTimers();
  });

  it("keeps the books after any sequence", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.boolean(),
        fc.array(step, { minLength: 6, maxLength: 26 }),
        async (secondDaily, steps) => {
          const base = Date.UTC(new Date().getUTCFullYear() + 10 + (epoch++ % 100), 2, 3, 9, 15);
          vi.useFakeTimers({ toFake: ["Date"], now: base });
          const t = await tenantWithCatalog(1, 1_000);
          await expectOk(
            call("PATCH", `/v1/partners/${t.partnerId}`, {
              token: t.operator,
              body: { rate_limit: "unlimited" },
            }),
          );
          const renewals = keptQueue();
          const operations = keptQueue();
          const w: World = {
            t,
            now: base,
            roots: [],
            stops: new Map(),
            ons: new Map(),
            lapsed: new Set(),
            renewals,
            operations,
            behind: { ...env, RENEWALS: renewals.queue, OPERATIONS: operations.queue } as Env,
            log: [],
          };
          try {
            await runStep(w, { k: "buy", daily: true, autoRenew: true });
            await runStep(w, { k: "buy", daily: secondDaily, autoRenew: true });
            for (const s of steps) await runStep(w, s);
            w.log.push("settle");
            await settle(w);
            await checkChains(w);
            vi.useRealTimers();
            await expectBooksBalance(t);
          } catch (error) {
            console.log(w.log.join("\n"));
            throw error;
          } finally {
            disarmFaults();
            vi.useRealTimers();
          }
        },
      ),
      { numRuns: 100, interruptAfterTimeLimit: 80_000 },
    );
  }, 180_000);
});
