import {
  createExecutionContext,
  createMessageBatch,
  createScheduledController,
  getQueueResult,
} from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import worker from "../../src/index";
import { subscriptionObject } from "../../src/objects/subscription-object";
import { deliver as deliverOperations, expectBooksBalance } from "../books";
import { call, dailyTwoWeeksBehind, keptQueue, type Tenant, usageOf } from "../helpers";

/**
 * A chain renewed up to the present one message at a time (`catchUp`) while the partner stops it
 * with a change accepted as an operation and still queued: the cron leaves a term alone while such
 * a change waits (README, Renewals), but each catch-up message renewed the next term regardless,
 * and the chain was renewed up to the present, every missed day charged after the partner had
 * turned its renewal off. Found reviewing the catch-up against the cron's rules.
 */

let year = new Date().getUTCFullYear() + 50;

/**
 * Runs the renewals messages kept in `sent`, in order, each catch-up one it sends too (at most `n`),
 * through the renewals consumer: its reading of `catchUp` is what has a catch-up ask for a stop.
 */
async function drain(sent: any[], behind: Env, n: number) {
  for (let i = 0; i < n && sent.length > 0; i++) {
    const body = sent.shift();
    const batch = createMessageBatch("stratus-renewals", [
      { id: `catchup-${i}-${body.subscription}`, timestamp: new Date(), attempts: 1, body },
    ]);
    await worker.queue(batch as MessageBatch<never>, behind);
    expect((await getQueueResult(batch, createExecutionContext())).retryMessages).toEqual([]);
  }
}

async function termCharges(t: Tenant) {
  const rows = await env.DB.prepare(
    "SELECT kind FROM charges WHERE partner_id = ? AND kind != 'usage' ORDER BY kind",
  )
    .bind(t.partnerId)
    .all<{ kind: string }>();
  return rows.results.map((r) => r.kind);
}

describe("a chain catching up while a change stopping it waits in the operations queue", () => {
  for (const [what, method, path, body] of [
    ["a cancel", "DELETE", (id: string) => `/v1/subscriptions/${id}/`, undefined],
    ["auto_renew turned off", "PATCH", (id: string) => `/v1/subscriptions/${id}/`, { auto_renew: false }],
  ] as const) {
    it(`${what} accepted while a catch-up renewal waits: that renewal is not bought`, async () => {
      const { t, sub, at } = await dailyTwoWeeksBehind(year++);
      const renewals = keptQueue();
      const behind = { ...env, RENEWALS: renewals.queue } as Env;
      // The run takes the term up; its message waits in the renewals queue.
      await worker.scheduled(
        createScheduledController({ scheduledTime: at.getTime(), cron: "*/5 * * * *" }),
        behind,
      );
      // (Another test's chain, due by then too, is not this one's to renew.)
      renewals.sent.splice(0, Infinity, ...renewals.sent.filter((m) => m.subscription === sub.id));
      expect(renewals.sent).toEqual([{ subscription: sub.id, at: at.toISOString() }]);
      // The run's message renews the term; the renewal is over already, so it is renewed in turn.
      await drain(renewals.sent, behind, 1);
      const renewal = (await subscriptionObject(env, sub.id).get())?.nextId ?? "";
      expect(renewals.sent.map((m) => m.subscription)).toEqual([renewal]);
      // The partner stops the chain (its last term, as it reads) while that message waits; the change
      // waits in the operations queue.
      const operations = keptQueue();
      const accepted = await call(method, path(renewal), {
        token: t.partnerKey,
        headers: { Prefer: "respond-async" },
        ...(body ? { body } : {}),
        env: { ...env, OPERATIONS: operations.queue } as Env,
      });
      expect(accepted.status).toBe(202);
      // The renewals queue drains (each catch-up message it is sent, too) before the change runs.
      await drain(renewals.sent, behind, 20);
      expect(renewals.sent).toEqual([]);
      await deliverOperations(operations.sent);
      // The term the run took up before the change was renewed (README: a change accepted after a
      // run took the term up comes after its renewal); nothing after it was bought.
      expect((await termCharges(t)).filter((kind) => kind !== "reversal")).toEqual(["purchase", "renewal"]);
      // The next run leaves the chain as the change did: nothing more is renewed.
      await worker.scheduled(
        createScheduledController({ scheduledTime: at.getTime() + 5 * 60_000, cron: "*/5 * * * *" }),
        behind,
      );
      await drain(renewals.sent, behind, 20);
      expect((await termCharges(t)).filter((kind) => kind === "renewal")).toHaveLength(1);
      expect(await usageOf(t, 0, "cpu")).toMatchObject({ pending: 0 });
      await expectBooksBalance(t);
    }, 60_000);
  }
});
