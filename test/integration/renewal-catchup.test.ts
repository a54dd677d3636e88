import { createScheduledController } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { extend } from "../../src/app/extend";
import { uuidv7 } from "../../src/domain/ids";
import { partnerScope } from "../../src/domain/scope";
import worker from "../../src/index";
import { subscriptionObject } from "../../src/objects/subscription-object";
import { expectBooksBalance } from "../books";
import { dailyTwoWeeksBehind, eventually, type Tenant, usageOf } from "../helpers";

/** Renewals after the cron was down for weeks: the chain is renewed up to the present, each term once. */

let year = new Date().getUTCFullYear() + 40;

async function cron(at: Date) {
  await worker.scheduled(
    createScheduledController({ scheduledTime: at.getTime(), cron: "*/5 * * * *" }),
    env,
  );
}

/** The terms of the chain from `id`, by their objects. */
async function chainOf(id: string) {
  const terms = [];
  let next: string | null = id;
  while (next !== null) {
    const r = await subscriptionObject(env, next).get();
    if (!r) break;
    terms.push(r);
    next = r.nextId;
  }
  return terms;
}

async function termCharges(t: Tenant) {
  const rows = await env.DB.prepare(
    "SELECT kind, subscription_id AS subscription, amount_minor AS amount FROM charges WHERE partner_id = ? AND kind != 'usage'",
  )
    .bind(t.partnerId)
    .all<{ kind: string; subscription: string; amount: number }>();
  return rows.results;
}

/** Every term live, each starting where the one before it ends. */
function expectContiguous(terms: Awaited<ReturnType<typeof chainOf>>) {
  for (const [i, term] of terms.entries()) {
    expect(term.endedAt).toBeNull();
    if (i > 0) expect(term.startTime, `term ${i}'s start`).toBe(terms[i - 1]?.endTime);
  }
}

/** Waits until the chain of `id` has a term running at `at`: renewed up to the present. */
const renewedUpTo = (id: string, at: Date) =>
  eventually(
    async () => {
      const chain = await chainOf(id);
      return Date.parse(chain.at(-1)?.endTime ?? "") > at.getTime() ? chain : undefined;
    },
    "the chain renewed up to the present",
    300,
  );

describe("renewals after a long cron outage", () => {
  it("renews a chain two weeks behind up to the present on the first run, each missed day charged once", async () => {
    const { t, sub, at } = await dailyTwoWeeksBehind(year++);
    await cron(at);
    const terms = await renewedUpTo(sub.id, at);
    // 15 daily renewals: no gap, no overlap, the last one running at `at`.
    expect(terms).toHaveLength(16);
    expectContiguous(terms);
    const charges = await termCharges(t);
    expect(charges.filter((c) => c.kind === "renewal")).toHaveLength(15);
    expect(new Set(charges.map((c) => c.subscription)).size).toBe(16);
    // The chain held its amount throughout, once.
    expect(await usageOf(t, 0, "cpu")).toMatchObject({ usage: 2, pending: 0 });
    await expectBooksBalance(t);
  }, 60_000);

  it("extends a chain whose renewals are behind from its end, and the run then renews it up to the present", async () => {
    const { t, sub, at } = await dailyTwoWeeksBehind(year++);
    // Extended by hand while the cron is still down: the chain held its quota since its end and
    // is renewing, so the extension continues it there, as its renewals would have.
    const byHand = await extend(
      env,
      partnerScope(t.partnerId),
      sub.id,
      {},
      { subscription: uuidv7(), order: uuidv7() },
      at,
    );
    expect(byHand.startTime).toBe(sub.end_time);
    await cron(at);
    const terms = await renewedUpTo(sub.id, at);
    // The extension's day, then 14 renewals: every day since the chain's start bought once.
    expect(terms).toHaveLength(16);
    expectContiguous(terms);
    const charges = await termCharges(t);
    expect(charges.filter((c) => c.kind === "extension")).toHaveLength(1);
    expect(charges.filter((c) => c.kind === "renewal")).toHaveLength(14);
    expect(await usageOf(t, 0, "cpu")).toMatchObject({ usage: 2, pending: 0 });
    await expectBooksBalance(t);
  }, 60_000);
});
