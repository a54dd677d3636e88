import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { FAN_OUT_CLAIM_MS } from "../../src/app/fan-out";
import type { MonthCloseMessage } from "../../src/app/usage";
import { closeUsageMonth } from "../../src/cron/months";

/**
 * A month's running clouds can take longer to bill than the cron's five minutes. Each run sent
 * every cloud D1 still showed running into the month, those waiting in the queue too, until the
 * month closed: a million clouds were sent several times over. A run now claims the month's
 * sending; later runs leave it to those messages for `FAN_OUT_CLAIM_MS`, and still close the month
 * as soon as none runs into it.
 */

/** A queue that keeps what is sent to it; `failAt` makes that send call throw. */
function recordingQueue(failAt = 0) {
  const sent: MonthCloseMessage[] = [];
  let calls = 0;
  const keep = async (bodies: MonthCloseMessage[]) => {
    if (++calls === failAt) throw new Error("queue unavailable");
    sent.push(...bodies);
  };
  const queue = {
    send: (body: MonthCloseMessage) => keep([body]),
    sendBatch: (messages: Iterable<{ body: MonthCloseMessage }>) => keep([...messages].map((m) => m.body)),
  };
  return { env: { ...env, RENEWALS: queue as unknown as Queue }, sent };
}

/** `count` clouds the read model shows running since `since`. */
async function running(prefix: string, count: number, since: string): Promise<string[]> {
  await env.DB.prepare(
    `INSERT INTO subscriptions (id, partner_id, customer_id, product, kind, amount, start_time, end_time,
       auto_renew, ended_at, root_id, previous_id, next_id, order_id, body, version, running_since)
     WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${count})
     SELECT '${prefix}-' || printf('%04d', i), 'p-close', 'c-close', 'cpu', 'caas', 1,
       '1999-01-01T12:00:00.000Z', NULL, 0, NULL, '${prefix}-' || printf('%04d', i), NULL, NULL, 'o-' || i, '{}', 1, ?1
     FROM n`,
  )
    .bind(Date.parse(since))
    .run();
  return Array.from({ length: count }, (_, i) => `${prefix}-${String(i + 1).padStart(4, "0")}`);
}

async function run(at: string, queue = recordingQueue()) {
  const close = await closeUsageMonth(queue.env, new Date(at));
  return { close, sent: queue.sent.map((m) => m.subscription).sort() };
}

describe("a month's close", () => {
  it("sends its running clouds once while their messages wait, again past the claim, and closes when none runs", async () => {
    const ids = await running("close-wait", 30, "2997-01-10T00:00:00.000Z");
    const first = await run("2997-02-01T00:05:00.000Z");
    expect(first).toEqual({ close: { month: "2997-01", enqueued: 30, closed: false }, sent: ids });
    // Their messages are still in the queue: the next runs send nothing.
    for (const at of ["2997-02-01T00:10:00.000Z", "2997-02-01T01:00:00.000Z"])
      expect(await run(at)).toEqual({ close: { month: "2997-01", enqueued: 0, closed: false }, sent: [] });
    // None of them was billed (their messages died): the first run past the claim sends them again.
    const later = new Date(Date.parse("2997-02-01T00:05:00.000Z") + FAN_OUT_CLAIM_MS).toISOString();
    expect((await run(later)).sent).toEqual(ids);
    // Billed up to the month's end (as `closeMonthOf` moves them on), the next run closes the month,
    // within the claim.
    await env.DB.prepare("UPDATE subscriptions SET running_since = ? WHERE id LIKE 'close-wait-%'")
      .bind(Date.parse("2997-02-01T00:00:00.000Z"))
      .run();
    const closed = new Date(Date.parse(later) + 5 * 60_000).toISOString();
    expect(await run(closed)).toEqual({ close: { month: "2997-01", enqueued: 0, closed: true }, sent: [] });
  });

  // A later month than the case before: a month closes for good once a later one has.
  it("whose clouds could not all be sent is sent by the next run", async () => {
    const ids = await running("close-unsent", 150, "2998-01-10T00:00:00.000Z");
    const failing = recordingQueue(2);
    await expect(closeUsageMonth(failing.env, new Date("2998-02-01T00:05:00.000Z"))).rejects.toThrow(
      "queue unavailable",
    );
    expect(failing.sent).toHaveLength(100);
    // Every cloud again: those sent are billed once whatever the number of their messages.
    const again = (await run("2998-02-01T00:10:00.000Z")).sent.filter((id) => ids.includes(id));
    expect(again).toEqual(ids);
  });
});
