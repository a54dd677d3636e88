import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import type { RenewalMessage } from "../../src/app/renewals";
import { scheduleRenewals } from "../../src/cron/renewals";
import { armFault, disarmFaults } from "../../src/domain/faults";
import worker from "../../src/index";
import { expectBooksBalance } from "../books";
import { call, eventually, expectOk, tenantWithCatalog, usageOf } from "../helpers";

/**
 * A cron run claims a due term (`renewal_queued_until`) and "every projection of the term clears
 * the mark". A term can be claimed after its last change, though: its renewal planned (the place
 * reserved, the mark cleared) by a message that then died, the next run finds it due again (the
 * renewal's term is not in the read model yet) and claims it, and that run's message completes the
 * renewal without changing the term. Its renewal cancelled, the term is due to expire (which ends
 * its chain's hold), and the next run must find it, not the first run an hour later.
 */

afterEach(() => disarmFaults());

const noon = (y: number, month: number, day: number) => new Date(Date.UTC(y, month - 1, day, 12));

function recordingQueue() {
  const sent: RenewalMessage[] = [];
  const keep = async (bodies: RenewalMessage[]) => {
    sent.push(...bodies);
  };
  const queue = {
    send: (body: RenewalMessage) => keep([body]),
    sendBatch: (messages: Iterable<{ body: RenewalMessage }>) => keep([...messages].map((m) => m.body)),
  };
  return { env: { ...env, RENEWALS: queue as unknown as Queue }, sent };
}

async function run(at: Date, id: string) {
  const queue = recordingQueue();
  await scheduleRenewals(queue.env, at);
  return queue.sent.filter((m) => m.subscription === id).map((m) => m.subscription);
}

let delivered = 0;
async function deliver(messages: RenewalMessage[]) {
  const batch = createMessageBatch<RenewalMessage>(
    "stratus-renewals",
    messages.map((body) => ({ id: `stale-${delivered++}`, timestamp: new Date(), attempts: 1, body })),
  );
  await worker.queue(batch, env);
  return getQueueResult(batch, createExecutionContext());
}

describe("a term claimed by a run after its renewal was planned", () => {
  it("is expired by the next run once its renewal is cancelled, not an hour later", async () => {
    const t = await tenantWithCatalog(1, 10);
    const y = new Date().getUTCFullYear() + 67;
    const r = await expectOk(
      call("POST", "/v1/subscriptions/", {
        token: t.partnerKey,
        body: {
          objects: [
            {
              customer: t.customers[0],
              resource: "cpu",
              amount: 2,
              start_time: noon(y, 6, 1).toISOString(),
              period: "1 day",
              auto_renew: true,
            },
          ],
        },
      }),
      201,
    );
    const sub = r.objects[0] as { id: string; end_time: string };
    const at = new Date(Date.parse(sub.end_time) - 4 * 60_000);
    expect(await run(at, sub.id)).toEqual([sub.id]);

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
    expect(await run(next, sub.id)).toEqual([sub.id]);
    expect((await deliver([{ subscription: sub.id, at: next.toISOString() }])).retryMessages).toEqual([]);
    const renewal = (await expectOk(call("GET", `/v1/subscriptions/${sub.id}/`, { token: t.partnerKey })))
      .descendants[0] as string;
    expect(renewal).toEqual(expect.any(String));

    // The renewal cancelled, the term is due again to expire: the run after its end finds it.
    await expectOk(call("DELETE", `/v1/subscriptions/${renewal}/`, { token: t.partnerKey }));
    const after = new Date(Date.parse(sub.end_time) + 60_000);
    const found = await eventually(
      async () => {
        const enqueued = await run(after, sub.id);
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
