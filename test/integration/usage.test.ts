import {
  createExecutionContext,
  createMessageBatch,
  createScheduledController,
  evictDurableObject,
  getQueueResult,
  runDurableObjectAlarm,
  runInDurableObject,
} from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { MonthCloseMessage } from "../../src/app/usage";
import { monthOf } from "../../src/domain/charges";
import { lineAmountMinor } from "../../src/domain/usage";
import worker from "../../src/index";
import {
  type SubscriptionObject,
  subscriptionObject,
  subscriptionShard,
} from "../../src/objects/subscription-object";
import { expectBooksBalance } from "../books";
import {
  call,
  eventually,
  expectOk,
  failingD1,
  shardAlarmOf,
  type Tenant,
  tenantWithCatalog,
} from "../helpers";

/**
 * Metered CaaS billing: a cloud's running time becomes `usage` lines of the charges ledger, at each
 * stop, quantity change, cancel and month end, each once. The cumulus cloud costs 1.00 EUR an hour.
 *
 * Tests that drive the cron use their own year, after this one, in increasing order: a run closes
 * every cloud of this file running since before its month, and a month it records closed closes
 * every month before it too.
 */

const HOUR = 3_600_000;
const PRICE = 100n;
let year = new Date().getUTCFullYear() + 3;
const nextYear = () => year++;

const setup = () => tenantWithCatalog(1);

async function buyCloud(t: Tenant, amount: number): Promise<string> {
  const r = await expectOk(
    call("POST", "/v1/subscriptions/", {
      token: t.partnerKey,
      body: { objects: [{ customer: t.customers[0], resource: "cumulus", amount }] },
    }),
    201,
  );
  return r.objects[0].id;
}

/** A cloud's usage lines as GET /v1/charges answers them, oldest first. */
async function usageLinesOf(t: Tenant, id: string): Promise<any[]> {
  const page = await expectOk(
    call("GET", `/v1/charges?subscription=${id}&limit=500`, { token: t.partnerKey }),
  );
  return page.objects.filter((l: any) => l.kind === "usage");
}

const usageOf = (t: Tenant, id: string) =>
  expectOk(call("GET", `/v1/subscriptions/${id}/usage`, { token: t.partnerKey }));

const statement = (t: Tenant, month: string) =>
  expectOk(call("GET", `/v1/customers/${t.customers[0]}/statements/${month}`, { token: t.partnerKey }));

/** A decimal EUR string in cents. */
const cents = (decimal: string) => BigInt(decimal.replace(".", ""));
const euros = (minor: bigint) => `${minor / 100n}.${(minor % 100n).toString().padStart(2, "0")}`;
const iso = (ms: number) => new Date(ms).toISOString();

/** An instant 90 minutes ago, or just after this month began if that is later: one line's worth. */
const recently = () => Math.max(Date.now() - 1.5 * HOUR, monthOf(new Date()).start.getTime() + 1000);

async function cron(at: number) {
  await worker.scheduled(createScheduledController({ scheduledTime: at, cron: "*/5 * * * *" }), env);
}

/** Delivers month-close messages to the Worker's renewals queue handler, as the queue would. */
async function deliver(messages: MonthCloseMessage[]) {
  const batch = createMessageBatch<MonthCloseMessage>(
    "stratus-renewals",
    messages.map((body, i) => ({
      id: `close-${i}-${body.subscription}`,
      timestamp: new Date(),
      attempts: 1,
      body,
    })),
  );
  await worker.queue(batch, env);
  return getQueueResult(batch, createExecutionContext());
}

const closedThrough = async () =>
  (await env.DB.prepare("SELECT max(month) AS m FROM usage_closes").first<{ m: string | null }>())?.m ?? null;

const projectedRunningSince = async (id: string) =>
  (
    await env.DB.prepare("SELECT running_since AS r FROM subscriptions WHERE id = ?")
      .bind(id)
      .first<{ r: number | null }>()
  )?.r ?? null;

/** Makes the cloud's object see D1 as down until it is evicted. */
const failD1For = (id: string) =>
  runInDurableObject(subscriptionShard(env, id), (instance: SubscriptionObject) => {
    const own = instance as unknown as { env: Env };
    own.env = { ...own.env, DB: failingD1(own.env.DB, "prepare", "batch") };
  });

describe("usage lines through the API", () => {
  it("start then stop writes one line with the right amount, on this month's statement", async () => {
    const t = await setup();
    const id = await buyCloud(t, 2);
    const startedAt = recently();
    expect((await subscriptionObject(env, id).run("start", new Date(startedAt))).ok).toBe(true);
    // While it runs, nothing is billed yet; the usage view shows what accrues.
    expect(await usageLinesOf(t, id)).toEqual([]);
    expect((await usageOf(t, id)).billed).toBe("0.00");
    const stopped = await expectOk(
      call("POST", `/v1/subscriptions/${id}/action/?do=stop`, { token: t.partnerKey }),
    );
    expect(stopped.run_state).toBe("stopped");
    const [line, ...more] = await usageLinesOf(t, id);
    expect(more).toEqual([]);
    const seconds = Math.floor(Date.parse(line.period_end) / 1000) - Math.floor(startedAt / 1000);
    expect(line).toMatchObject({
      id: `usage:${id}:${startedAt}`,
      kind: "usage",
      partner: t.partnerId,
      customer: t.customers[0],
      subscription: id,
      order: null,
      product: "cumulus",
      quantity: 2,
      unit_price: "1.00",
      period_start: iso(startedAt),
      seconds,
      amount: euros(lineAmountMinor(2, BigInt(seconds), PRICE)),
      currency: "EUR",
      month: monthOf(new Date(startedAt)).name,
    });
    const usage = await usageOf(t, id);
    expect(usage).toMatchObject({ charge: line.amount, billed: line.amount, accruing: "0.00" });
    expect(usage.lines).toEqual([
      {
        id: line.id,
        period_start: line.period_start,
        period_end: line.period_end,
        quantity: 2,
        seconds,
        amount: line.amount,
      },
    ]);
    const month = await statement(t, line.month);
    // The cloud's purchase line (0.00: nothing up front), then its usage.
    expect(month.objects.map((l: any) => l.id)).toEqual([`purchase:${id}`, line.id]);
    expect(month.totals).toEqual({ EUR: line.amount });
    // Stopping again, or a retried stop, writes nothing more.
    await expectOk(call("POST", `/v1/subscriptions/${id}/action/?do=stop`, { token: t.partnerKey }));
    expect(await usageLinesOf(t, id)).toHaveLength(1);
    await expectBooksBalance(t);
  });

  it("a quantity change while running splits the running time into two lines", async () => {
    const t = await setup();
    const id = await buyCloud(t, 2);
    const object = subscriptionObject(env, id);
    const start = Date.UTC(nextYear(), 4, 10, 9);
    expect((await object.run("start", new Date(start))).ok).toBe(true);
    expect((await object.changeAmount(5, new Date(start + HOUR))).ok).toBe(true);
    expect(await usageLinesOf(t, id)).toHaveLength(1);
    expect((await object.run("stop", new Date(start + 3 * HOUR + 7_000))).ok).toBe(true);
    const lines = await usageLinesOf(t, id);
    expect(lines.map((l) => [l.id, l.quantity, l.seconds, l.amount])).toEqual([
      [`usage:${id}:${start}`, 2, 3600, "2.00"],
      // 5 × 7207 s × 1.00/h = 10.0097…, rounded half up.
      [`usage:${id}:${start + HOUR}`, 5, 7207, "10.01"],
    ]);
    const usage = await usageOf(t, id);
    expect(usage.charge).toBe("12.01");
    expect(usage.intervals).toHaveLength(2);
    await expectBooksBalance(t);
  });

  it("cancel while running closes the running time with a line", async () => {
    const t = await setup();
    const id = await buyCloud(t, 3);
    const startedAt = recently();
    expect((await subscriptionObject(env, id).run("start", new Date(startedAt))).ok).toBe(true);
    const cancelled = await expectOk(call("DELETE", `/v1/subscriptions/${id}/`, { token: t.partnerKey }));
    expect(cancelled.end_reason).toBe("cancelled");
    const lines = await usageLinesOf(t, id);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ id: `usage:${id}:${startedAt}`, quantity: 3 });
    expect(Date.parse(lines[0].period_end)).toBeLessThanOrEqual(Date.parse(cancelled.ended_at));
    expect(cents(lines[0].amount)).toBe(lineAmountMinor(3, BigInt(lines[0].seconds), PRICE));
    expect((await usageOf(t, id)).charge).toBe(lines[0].amount);
    // Cancelling again changes nothing.
    await expectOk(call("DELETE", `/v1/subscriptions/${id}/`, { token: t.partnerKey }));
    expect(await usageLinesOf(t, id)).toHaveLength(1);
    await expectBooksBalance(t);
  });
});

describe("month ends", () => {
  it("a cloud running across a month boundary makes two lines, each on its own month's statement", async () => {
    const t = await setup();
    const id = await buyCloud(t, 3);
    const object = subscriptionObject(env, id);
    const y = nextYear();
    const boundary = Date.UTC(y, 1, 1);
    const january = `${y}-01`;
    const february = `${y}-02`;
    expect((await object.run("start", new Date(boundary - HOUR))).ok).toBe(true);

    // The first run after the month sends the cloud to be billed up to its end; the month is not
    // closed yet: a cloud was running into it.
    await cron(boundary + 60_000);
    const [first] = await eventually(async () => {
      const lines = await usageLinesOf(t, id);
      return lines.length > 0 ? lines : undefined;
    }, "January's line");
    expect(first).toMatchObject({
      id: `usage:${id}:${boundary - HOUR}`,
      period_start: iso(boundary - HOUR),
      period_end: iso(boundary),
      seconds: 3600,
      amount: "3.00",
      month: january,
    });
    expect(await closedThrough()).not.toBe(january);
    await eventually(
      async () => ((await projectedRunningSince(id)) === boundary ? true : undefined),
      "the projection",
    );

    // The next run finds nothing running since before February: January is closed, nothing else changes.
    await cron(boundary + 6 * 60_000);
    expect(await closedThrough()).toBe(january);
    await cron(boundary + 11 * 60_000);
    // A redelivered close writes nothing either.
    const redelivered = await deliver([{ subscription: id, closeMonth: iso(boundary) }]);
    expect(redelivered.retryMessages).toEqual([]);
    expect(await usageLinesOf(t, id)).toHaveLength(1);

    expect((await object.run("stop", new Date(boundary + 1.5 * HOUR + 13_000))).ok).toBe(true);
    const lines = await usageLinesOf(t, id);
    expect(lines.map((l) => [l.id, l.seconds, l.amount, l.month])).toEqual([
      [first.id, 3600, "3.00", january],
      // 3 × 5413 s × 1.00/h = 4.51083…
      [`usage:${id}:${boundary}`, 5413, "4.51", february],
    ]);
    expect((await statement(t, january)).objects.map((l: any) => l.id)).toEqual([first.id]);
    expect((await statement(t, february)).objects.map((l: any) => l.id)).toEqual([lines[1].id]);
    const usage = await usageOf(t, id);
    expect(usage.charge).toBe("7.51");
    // January, billed whole, has left the history; the view counts it as settled.
    expect(usage.intervals.map((i: any) => [i.start, i.end])).toEqual([
      [iso(boundary), iso(boundary + 1.5 * HOUR + 13_000)],
    ]);
    expect(usage.settled).toEqual({
      through: iso(boundary),
      intervals: 1,
      running_seconds: 3600,
      billed: "3.00",
    });
    await expectBooksBalance(t);
  });

  it("a push that fails is retried by the alarm and lands once; the month waits for it", async () => {
    const t = await setup();
    const id = await buyCloud(t, 1);
    const object = subscriptionObject(env, id);
    const y = nextYear();
    const boundary = Date.UTC(y, 1, 1);
    expect((await object.run("start", new Date(boundary - 2 * HOUR))).ok).toBe(true);
    expect(await projectedRunningSince(id)).toBe(boundary - 2 * HOUR);

    // D1 is down for the object: the stop is committed, its line kept in the object's storage.
    await failD1For(id);
    expect((await object.run("stop", new Date(boundary - HOUR))).ok).toBe(true);
    expect(await usageLinesOf(t, id)).toEqual([]);

    // The cron sees the cloud still running into February: it cannot close January.
    await cron(boundary + 60_000);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await cron(boundary + 6 * 60_000);
    expect(await closedThrough()).not.toBe(`${y}-01`);

    // A new instance, D1 back: the alarm pushes the line, once.
    await evictDurableObject(subscriptionShard(env, id));
    expect(await runDurableObjectAlarm(subscriptionShard(env, id))).toBe(true);
    const lines = await usageLinesOf(t, id);
    expect(lines.map((l) => [l.id, l.amount, l.month])).toEqual([
      [`usage:${id}:${boundary - 2 * HOUR}`, "1.00", `${y}-01`],
    ]);
    // Nothing is left to retry: the alarm waits only for the push checks of the commits.
    const left = await shardAlarmOf(id);
    expect(left.wakes).toEqual([]);
    expect(left.alarm).toBe(left.check);
    expect(await projectedRunningSince(id)).toBeNull();
    await cron(boundary + 11 * 60_000);
    expect(await closedThrough()).toBe(`${y}-01`);
    expect(await usageLinesOf(t, id)).toHaveLength(1);
    await expectBooksBalance(t);
  });

  it("a line that lands after its month was closed goes on the month it lands in", async () => {
    const t = await setup();
    const id = await buyCloud(t, 1);
    const object = subscriptionObject(env, id);
    const y = nextYear();
    const boundary = Date.UTC(y, 1, 1);
    // Both pushes fail: D1 never saw the cloud run, so nothing holds January open.
    await failD1For(id);
    expect((await object.run("start", new Date(boundary - 2 * HOUR))).ok).toBe(true);
    expect((await object.run("stop", new Date(boundary - HOUR))).ok).toBe(true);
    await cron(boundary + 60_000);
    expect(await closedThrough()).toBe(`${y}-01`);

    await evictDurableObject(subscriptionShard(env, id));
    expect(await runDurableObjectAlarm(subscriptionShard(env, id))).toBe(true);
    const [line] = await usageLinesOf(t, id);
    expect(line).toMatchObject({ period_start: iso(boundary - 2 * HOUR), amount: "1.00" });
    // January's statement never changes once closed; the line is on the month D1 wrote it in.
    expect(line.month).toBe(line.created_at.slice(0, 7));
    expect((await statement(t, `${y}-01`)).objects).toEqual([]);
    await expectBooksBalance(t);
  });
});

describe("a cloud's history over months", () => {
  it("keeps only its months not wholly billed; the usage view and the books count the rest as settled", async () => {
    const t = await setup();
    const id = await buyCloud(t, 2);
    const y = nextYear();
    const day = (month: number, date: number) => Date.UTC(y, month, date, 12);
    for (const month of [0, 1]) {
      expect((await subscriptionObject(env, id).run("start", new Date(day(month, 10)))).ok).toBe(true);
      expect((await subscriptionObject(env, id).run("stop", new Date(day(month, 11)))).ok).toBe(true);
    }
    const started = await subscriptionObject(env, id).run("start", new Date(day(2, 10)));
    expect(started.ok).toBe(true);
    const r = await subscriptionObject(env, id).get();
    // January and February are billed whole: only March's run is kept.
    expect(r?.runs).toEqual([{ start: day(2, 10), end: null, quantity: 2 }]);
    const day2 = lineAmountMinor(2, 86_400n, PRICE);
    expect(r?.settledRuns).toEqual({
      through: Date.UTC(y, 2, 1),
      intervals: 2,
      seconds: "172800",
      billedMinor: String(2n * day2),
    });
    const view = await usageOf(t, id);
    expect(view).toMatchObject({
      intervals: [{ start: iso(day(2, 10)), end: null, quantity: 2 }],
      lines: [],
      billed: euros(2n * day2),
      settled: {
        through: iso(Date.UTC(y, 2, 1)),
        intervals: 2,
        running_seconds: 172_800,
        billed: euros(2n * day2),
      },
    });
    expect((await usageLinesOf(t, id)).map((l) => l.amount)).toEqual([euros(day2), euros(day2)]);
    expect((await subscriptionObject(env, id).run("stop", new Date(day(2, 11)))).ok).toBe(true);
    const stopped = await usageOf(t, id);
    expect(stopped.billed).toBe(euros(3n * day2));
    await expectBooksBalance(t);
  });
});
