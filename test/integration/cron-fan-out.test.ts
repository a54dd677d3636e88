import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { PAGE, PAGES_PER_INVOCATION } from "../../src/app/fan-out";
import type { FanOutMessage, RenewalMessage } from "../../src/app/renewals";
import type { MonthCloseMessage } from "../../src/app/usage";
import { closeUsageMonth } from "../../src/cron/months";
import { scheduleRenewals } from "../../src/cron/renewals";
import worker from "../../src/index";
import { limitedD1 } from "../limited-d1";

/**
 * Terms end at noon UTC, so a night's renewals can all be due in one cron run, and a month's
 * running clouds all close at its first run. The run paged every one of them in its own invocation:
 * at 500,000 due that passes D1's 1,000 queries (and the subrequests of 5,000 sends), so the run
 * fails every time, and the cron's later steps fail with it. Now an invocation pages at most
 * `PAGES_PER_INVOCATION` pages and hands the rest on in one message, which the renewals consumer
 * pages the same way, each invocation bounded, every row enqueued exactly once along the chain.
 */

type Body = RenewalMessage | MonthCloseMessage | FanOutMessage;
const ROWS = PAGE * PAGES_PER_INVOCATION + 700;

/** A renewals queue that keeps what is sent to it, and counts the calls of each invocation. */
function recordingQueue() {
  const sent: Body[] = [];
  const state = { calls: 0 };
  const queue = {
    async send(body: Body) {
      state.calls++;
      sent.push(body);
    },
    async sendBatch(messages: Iterable<{ body: Body }>) {
      state.calls++;
      for (const m of messages) sent.push(m.body);
    },
  };
  return { queue: queue as unknown as Queue, sent, state };
}

async function fill(prefix: string, endTime: string | null, runningSince: number | null) {
  await env.DB.prepare(
    `INSERT INTO subscriptions (id, partner_id, customer_id, product, kind, amount, start_time, end_time,
       auto_renew, ended_at, root_id, previous_id, next_id, order_id, body, version, running_since)
     WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${ROWS})
     SELECT '${prefix}-' || printf('%06d', i), 'p-fan-out', 'c-fan-out', 'cpu', '${runningSince === null ? "subscription" : "caas"}',
       1, '1999-01-01T12:00:00.000Z', ?1, 1, NULL, '${prefix}-' || printf('%06d', i), NULL, NULL, 'o-' || i, '{}', 1, ?2
     FROM n`,
  )
    .bind(endTime, runningSince)
    .run();
}

/** Runs the fan-out messages `sent` holds through the consumer, one invocation each, until none is left. */
async function carryOn(
  sent: Body[],
  d1: ReturnType<typeof limitedD1>,
  consumerEnv: Env,
  record: ReturnType<typeof recordingQueue>,
) {
  const invocations: number[] = [];
  for (let message = sent.findIndex((b) => ("fanOut" in b)); message >= 0; ) {
    const body = sent.splice(message, 1)[0] as FanOutMessage;
    d1.invocation();
    record.state.calls = 0;
    const batch = createMessageBatch<Body>("stratus-renewals", [
      { id: `fan-out-${invocations.length}`, timestamp: new Date(), attempts: 1, body },
    ]);
    await worker.queue(batch as MessageBatch<unknown>, consumerEnv);
    const result = await getQueueResult(batch, createExecutionContext());
    expect(result.explicitAcks).toHaveLength(1);
    invocations.push(record.state.calls);
    message = sent.findIndex((b) => "fanOut" in b);
  }
  return invocations;
}

describe("a cron run with more due work than one invocation pages", () => {
  it("enqueues every due renewal once, each invocation paging a bounded number of pages", async () => {
    await fill("fan-out-due", "2000-01-01T12:00:00.000Z", null);
    const d1 = limitedD1(env.DB);
    const record = recordingQueue();
    const cronEnv = { ...env, DB: d1.db, RENEWALS: record.queue };

    const enqueued = await scheduleRenewals(cronEnv, new Date("2000-01-01T11:58:00.000Z"));
    expect(enqueued).toBe(PAGE * PAGES_PER_INVOCATION);
    expect(d1.used).toBeLessThanOrEqual(PAGES_PER_INVOCATION);
    expect(record.sent.filter((b) => "fanOut" in b)).toHaveLength(1);

    const invocations = await carryOn(record.sent, d1, cronEnv, record);
    expect(invocations).toHaveLength(1);
    expect(d1.used).toBeLessThanOrEqual(PAGES_PER_INVOCATION);

    const renewals = record.sent as RenewalMessage[];
    expect(renewals).toHaveLength(ROWS);
    expect(new Set(renewals.map((m) => m.subscription)).size).toBe(ROWS);
    expect(new Set(renewals.map((m) => m.at))).toEqual(new Set(["2000-01-01T11:58:00.000Z"]));
  }, 120_000);

  it("sends every cloud running since before the month's end to be billed once, the same way", async () => {
    await fill("fan-out-cloud", null, Date.parse("2999-01-15T00:00:00.000Z"));
    const d1 = limitedD1(env.DB);
    const record = recordingQueue();
    const cronEnv = { ...env, DB: d1.db, RENEWALS: record.queue };

    const close = await closeUsageMonth(cronEnv, new Date("2999-02-01T00:05:00.000Z"));
    expect(close).toEqual({ month: "2999-01", enqueued: PAGE * PAGES_PER_INVOCATION, closed: false });
    // The month read closed or not, whether a cloud still runs into it, its claim, then the pages.
    expect(d1.used).toBeLessThanOrEqual(PAGES_PER_INVOCATION + 3);

    await carryOn(record.sent, d1, cronEnv, record);
    const closes = record.sent as MonthCloseMessage[];
    expect(closes).toHaveLength(ROWS);
    expect(new Set(closes.map((m) => m.subscription)).size).toBe(ROWS);
    expect(new Set(closes.map((m) => m.closeMonth))).toEqual(new Set(["2999-02-01T00:00:00.000Z"]));
  }, 120_000);
});
