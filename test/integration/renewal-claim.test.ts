import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { FAN_OUT_CLAIM_MS } from "../../src/app/fan-out";
import type { RenewalMessage } from "../../src/app/renewals";
import { HORIZON_MS, scheduleRenewals } from "../../src/cron/renewals";
import { armFault, disarmFaults } from "../../src/domain/faults";
import { expectBooksBalance } from "../books";
import {
  buyOne,
  call,
  deliverRenewals as deliver,
  eventually,
  expectOk,
  type Tenant,
  tenantWithCatalog,
  usageOf,
} from "../helpers";

/**
 * A night's renewals can take longer to work through than the cron's five minutes. Each run found
 * every due term whose renewal was still waiting in the queue and enqueued it again (docs/SCALING.md:
 * ~4.5 million messages for a million renewals), each duplicate queued in front of real work. A run
 * now claims the terms it enqueues: later runs pass over them until the term changes (its renewal
 * planned, renewed, expired), the renewal leaves it as it was, or the claim's bound has passed.
 */

const noon = (y: number, month: number, day: number) => new Date(Date.UTC(y, month - 1, day, 12));

/** A renewals queue that keeps what is sent to it; `failAt` makes that send call throw. */
function recordingQueue(failAt = 0) {
  const sent: RenewalMessage[] = [];
  let calls = 0;
  const keep = async (bodies: RenewalMessage[]) => {
    if (++calls === failAt) throw new Error("queue unavailable");
    sent.push(...bodies);
  };
  const queue = {
    send: (body: RenewalMessage) => keep([body]),
    sendBatch: (messages: Iterable<{ body: RenewalMessage }>) => keep([...messages].map((m) => m.body)),
  };
  return { env: { ...env, RENEWALS: queue as unknown as Queue }, sent };
}

/** What a cron run at `at` enqueues of the subscriptions `ids`. */
async function run(at: Date, ids: readonly string[], queue = recordingQueue()) {
  await scheduleRenewals(queue.env, at);
  const mine = new Set(ids);
  return queue.sent.filter((m) => mine.has(m.subscription)).map((m) => m.subscription);
}

/** `count` due read-model rows ending at `endTime`, nothing after them. */
async function dueRows(prefix: string, count: number, endTime: string): Promise<string[]> {
  await env.DB.prepare(
    `INSERT INTO subscriptions (id, partner_id, customer_id, product, kind, amount, start_time, end_time,
       auto_renew, ended_at, root_id, previous_id, next_id, order_id, body, version)
     WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${count})
     SELECT '${prefix}-' || printf('%04d', i), 'p-claim', 'c-claim', 'cpu', 'subscription', 1,
       '1999-01-01T12:00:00.000Z', ?1, 1, NULL, '${prefix}-' || printf('%04d', i), NULL, NULL, 'o-' || i, '{}', 1
     FROM n`,
  )
    .bind(endTime)
    .run();
  return Array.from({ length: count }, (_, i) => `${prefix}-${String(i + 1).padStart(4, "0")}`);
}

const read = (t: Tenant, id: string) =>
  expectOk(call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey }));

describe("a term whose renewal a cron run enqueued", () => {
  afterEach(() => disarmFaults());

  it("is not enqueued again while its message waits, and is found again once the claim's bound has passed", async () => {
    const ids = await dueRows("claim-wait", 30, "2001-03-01T12:00:00.000Z");
    const at = new Date("2001-03-01T11:58:00.000Z");
    expect((await run(at, ids)).sort()).toEqual(ids);
    // The renewals are still in the queue: the next runs pass over them.
    for (const minutes of [5, 10, 55])
      expect(await run(new Date(at.getTime() + minutes * 60_000), ids)).toEqual([]);
    // None of them was ever worked on (their messages died): the first run past the bound finds them.
    expect((await run(new Date(at.getTime() + FAN_OUT_CLAIM_MS), ids)).sort()).toEqual(ids);
  });

  it("whose messages could not be sent is found again by the next run, those sent are not", async () => {
    const ids = await dueRows("claim-unsent", 250, "1990-04-01T12:00:00.000Z");
    const at = new Date("1990-04-01T11:58:00.000Z");
    // Sent 100 at a time (due before any other row here, so the first page is theirs): the second
    // batch fails, the first is on its way.
    const failing = recordingQueue(2);
    await expect(scheduleRenewals(failing.env, at)).rejects.toThrow("queue unavailable");
    const sent = failing.sent.map((m) => m.subscription).filter((id) => ids.includes(id));
    expect(sent).toHaveLength(100);
    const again = await run(new Date(at.getTime() + HORIZON_MS), ids);
    expect(again.sort()).toEqual(ids.filter((id) => !sent.includes(id)));
  });

  it("ending before the next run without auto_renew is expired by the first run after its end", async () => {
    const t = await tenantWithCatalog(1, 10);
    const y = new Date().getUTCFullYear() + 61;
    const sub = await buyOne(t, {
      resource: "cpu",
      amount: 2,
      start_time: noon(y, 6, 1).toISOString(),
      period: "1 day",
    });
    // Four minutes before its end a run enqueues it (it ends before the next run); not over yet,
    // the consumer leaves it as it is.
    const at = new Date(Date.parse(sub.end_time) - 4 * 60_000);
    expect(await run(at, [sub.id])).toEqual([sub.id]);
    await deliver([{ subscription: sub.id, at: at.toISOString() }]);
    expect(await read(t, sub.id)).toMatchObject({ ended_at: null });
    // The next run, a minute after its end, expires it: not an hour later, when the claim lapses.
    const next = new Date(at.getTime() + 5 * 60_000);
    expect(await run(next, [sub.id])).toEqual([sub.id]);
    await deliver([{ subscription: sub.id, at: next.toISOString() }]);
    expect(await read(t, sub.id)).toMatchObject({ status: "expired", end_reason: "expired" });
    expect(await usageOf(t, 0, "cpu")).toMatchObject({ usage: 0, pending: 0 });
  });

  it("that its renewal left as it was (refused before the term is over) is enqueued by the next run", async () => {
    const t = await tenantWithCatalog(1, 10);
    const y = new Date().getUTCFullYear() + 61;
    const sub = await buyOne(t, {
      resource: "ip",
      amount: 1,
      start_time: noon(y, 5, 1).toISOString(),
      period: "1 day",
      auto_renew: true,
    });
    const limitIp = (limit: number) =>
      expectOk(
        call("PUT", `/v1/customers/${t.customers[0]}/quotas`, {
          token: t.operator,
          body: { resource: "stratus.ip", limit },
        }),
      );
    const at = new Date(Date.parse(sub.end_time) - 4 * 60_000);
    expect(await run(at, [sub.id])).toEqual([sub.id]);
    await limitIp(0);
    await deliver([{ subscription: sub.id, at: at.toISOString() }]);
    expect(await read(t, sub.id)).toMatchObject({ ended_at: null, descendants: [] });
    // The next run, three minutes before the term's end, tries again (within the claim's bound).
    const next = new Date(at.getTime() + 60_000);
    expect(await run(next, [sub.id])).toEqual([sub.id]);
    await limitIp(1);
    await deliver([{ subscription: sub.id, at: next.toISOString() }]);
    const renewal = (await read(t, sub.id)).descendants[0];
    expect(renewal).toEqual(expect.any(String));
    // Renewed: no run enqueues it again.
    expect(await run(new Date(next.getTime() + 60_000), [sub.id])).toEqual([]);

    // Its renewal cancelled, the term is due again, to expire: the renewal's change of the term
    // took the claim with it, so the next run finds it, not the first past the bound.
    await expectOk(call("DELETE", `/v1/subscriptions/${renewal}/`, { token: t.partnerKey }));
    const after = new Date(Date.parse(sub.end_time) + 60_000);
    const found = await eventually(async () => {
      const enqueued = await run(after, [sub.id]);
      return enqueued.length > 0 ? enqueued : undefined;
    }, "the term enqueued again");
    expect(found).toEqual([sub.id]);
    await deliver([{ subscription: sub.id, at: after.toISOString() }]);
    expect(await read(t, sub.id)).toMatchObject({ status: "expired", end_reason: "expired" });
    expect(await usageOf(t, 0, "ip")).toMatchObject({ usage: 0, pending: 0 });
  });

  // A term can be claimed after its last change: its renewal planned (the mark cleared) by a
  // message that then died, the next run finds it due again (the renewal's term is not in the
  // read model yet) and claims it, and that run's message completes the renewal without changing
  // the term. Its renewal cancelled, the term is due to expire (ending its chain's hold).
  it("claimed after its renewal was planned is expired by the next run once its renewal is cancelled, not an hour later", async () => {
    const t = await tenantWithCatalog(1, 10);
    const y = new Date().getUTCFullYear() + 67;
    const sub = await buyOne(t, {
      resource: "cpu",
      amount: 2,
      start_time: noon(y, 6, 1).toISOString(),
      period: "1 day",
      auto_renew: true,
    });
    const at = new Date(Date.parse(sub.end_time) - 4 * 60_000);
    expect(await run(at, [sub.id])).toEqual([sub.id]);

    // The renewal is planned (the place after the term reserved), then its message dies.
    armFault("renewal.planned");
    expect((await deliver([{ subscription: sub.id, at: at.toISOString() }])).retryMessages).toHaveLength(1);
    await eventually(async () => {
      const row = await env.DB.prepare("SELECT next_id FROM subscriptions WHERE id = ?")
        .bind(sub.id)
        .first<{ next_id: string | null }>();
      return row?.next_id ?? undefined;
    }, "the planned renewal in the read model");

    // The next run finds the term due again (its renewal's term does not exist yet) and claims it;
    // its message completes the renewal, which leaves the term as it was.
    const next = new Date(at.getTime() + 60_000);
    expect(await run(next, [sub.id])).toEqual([sub.id]);
    expect((await deliver([{ subscription: sub.id, at: next.toISOString() }])).retryMessages).toEqual([]);
    const renewal = (await expectOk(call("GET", `/v1/subscriptions/${sub.id}/`, { token: t.partnerKey })))
      .descendants[0] as string;
    expect(renewal).toEqual(expect.any(String));

    // The renewal cancelled, the term is due again to expire: the run after its end finds it.
    await expectOk(call("DELETE", `/v1/subscriptions/${renewal}/`, { token: t.partnerKey }));
    const after = new Date(Date.parse(sub.end_time) + 60_000);
    const found = await eventually(
      async () => {
        const enqueued = await run(after, [sub.id]);
        return enqueued.length > 0 ? enqueued : undefined;
      },
      "the term enqueued again",
      30,
    );
    expect(found).toEqual([sub.id]);
    await deliver([{ subscription: sub.id, at: after.toISOString() }]);
    expect(
      await expectOk(call("GET", `/v1/subscriptions/${sub.id}/`, { token: t.partnerKey })),
    ).toMatchObject({ status: "expired", end_reason: "expired" });
    expect(await usageOf(t, 0, "cpu")).toMatchObject({ usage: 0, pending: 0 });
    await expectBooksBalance(t);
  });
});
