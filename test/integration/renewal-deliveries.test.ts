import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { recoverPurchase } from "../../src/app/recovery";
import { renewOrExpire } from "../../src/app/renewals";
import { disarmFaults } from "../../src/domain/faults";
import { subscriptionObject } from "../../src/objects/subscription-object";
import { expectBooksBalance, purchaseDiedAt } from "../books";
import { call, expectOk, ledgersHeld, tenantWithCatalog } from "../helpers";

/**
 * Renewals found by review: two deliveries of one term's renewal (two cron runs' messages, or a
 * redelivery) running at once, one of which gives the renewal's place back while the other buys
 * the renewal under the same ids.
 */

afterEach(() => disarmFaults());

/**
 * An auto-renewing term due in a minute whose purchase has not completed yet (its request died
 * after writing its orders, so it took effect; the recovery sweep will settle it). The cron finds
 * it due on every run.
 */
async function dueTermWithOpenPurchase() {
  const t = await tenantWithCatalog(1, 100);
  const { ids } = await purchaseDiedAt(t, "purchase.ordered");
  const id = ids.subscriptions[0] as string;
  unwrapOk(await subscriptionObject(env, id).setAutoRenew(true));
  const term = await subscriptionObject(env, id).get();
  return { t, ids, id, at: new Date(Date.parse(term?.endTime as string) - 60_000) };
}

/** The term after `id` as its chain names it, and the live terms after it in the read model. */
async function renewalsOf(id: string) {
  const next = (await subscriptionObject(env, id).get())?.nextId ?? null;
  const live = await env.DB.prepare(
    "SELECT id, end_time FROM subscriptions WHERE previous_id = ? AND ended_at IS NULL",
  )
    .bind(id)
    .all<{ id: string; end_time: string }>();
  return { next, live: live.results };
}

describe("a renewal delivery that found the term's purchase open, while another delivery renews it", () => {
  it("keeps the chain linked to the renewal it bought, so an extension by hand follows the renewal", async () => {
    const { t, ids, id, at } = await dueTermWithOpenPurchase();

    // Delivery A: plans the renewal (its place reserved), learns the term's purchase is still open
    // (its issue answers so, issuing nothing), and is held before it acts on that.
    const held = ledgersHeld(["issue"], "after");
    const first = renewOrExpire(held.env, id, at);
    await held.reached;

    // Meanwhile the purchase completes, and delivery B (the next cron run's message) renews the term.
    expect(await recoverPurchase(env, { ids, opRef: null }, new Date())).toBe("took effect");
    expect(await renewOrExpire(env, id, at)).toBe("renewed");
    const renewal = (await subscriptionObject(env, id).get())?.nextId as string;
    const renewed = await subscriptionObject(env, renewal).get();
    expect(renewed).toMatchObject({ previousId: id, endedAt: null });

    // A goes on with what it read: the purchase was open, so it gives the renewal's place back.
    held.release();
    expect(await first).toBe("skipped");

    // An extension by hand (of the chain, named by its first term) buys the term after the
    // renewal, never a second term, charged again, for the renewal's month.
    const extended = await expectOk(
      call("POST", `/v1/subscriptions/${id}/action/?do=extend`, { token: t.partnerKey, body: {} }),
    );
    expect({ extends: extended.extends, start_time: extended.start_time }).toEqual({
      extends: renewal,
      start_time: renewed?.endTime,
    });
    // The renewal is live and charged: the chain still leads to it.
    expect((await subscriptionObject(env, id).get())?.nextId).toBe(renewal);
    await expectBooksBalance(t);
  });
});

describe("a renewal delivery that found the term's purchase open, while another delivery is buying the renewal", () => {
  it("gives the renewal up with its place: the other delivery renews once, with a term the chain leads to", async () => {
    const { t, ids, id, at } = await dueTermWithOpenPurchase();

    // Delivery A learns the term's purchase is open (from its issue), and is held there.
    const heldA = ledgersHeld(["issue"], "after");
    const first = renewOrExpire(heldA.env, id, at);
    await heldA.reached;
    expect(await recoverPurchase(env, { ids, opRef: null }, new Date())).toBe("took effect");
    // Delivery B finds the purchase settled and the place its own, and is held before it buys.
    const heldB = ledgersHeld(["issue"], "before");
    const second = renewOrExpire(heldB.env, id, at);
    await heldB.reached;

    // A gives the place back; then B buys.
    heldA.release();
    expect(await first).toBe("skipped");
    heldB.release();
    expect(await second).toBe("renewed");

    const { next, live } = await renewalsOf(id);
    // One renewal, live, charged once, and the one the chain leads to.
    expect(live.map((r) => r.id)).toEqual([next]);
    const extended = await expectOk(
      call("POST", `/v1/subscriptions/${id}/action/?do=extend`, { token: t.partnerKey, body: {} }),
    );
    expect({ extends: extended.extends, start_time: extended.start_time }).toEqual({
      extends: next,
      start_time: live[0]?.end_time,
    });
    await expectBooksBalance(t);
  });
});

describe("a renewal delivery refused on quota, while another delivery is buying the renewal", () => {
  it("leaves the chain leading to the renewal the other delivery bought once the limit was raised", async () => {
    const t = await tenantWithCatalog(1, 100);
    const limitIp = (limit: number) =>
      expectOk(
        call("PUT", `/v1/customers/${t.customers[0]}/quotas`, {
          token: t.operator,
          body: { resource: "stratus.ip", limit },
        }),
      );
    const bought = await expectOk(
      call("POST", "/v1/subscriptions/", {
        token: t.partnerKey,
        body: {
          objects: [
            { customer: t.customers[0], resource: "ip", amount: 1, period: "1 day", auto_renew: true },
          ],
        },
      }),
      201,
    );
    const id: string = bought.objects[0].id;
    const at = new Date(Date.parse(bought.objects[0].end_time) - 60_000);
    // The operator lowers the limit below what the chain holds: a renewal now is refused.
    await limitIp(0);
    // Delivery B plans the renewal and is held before it asks the ledger.
    const heldB = ledgersHeld(["issue"], "before");
    const second = renewOrExpire(heldB.env, id, at);
    await heldB.reached;
    // Delivery A (the same renewal's other message) is refused, and gives the place back.
    expect(await renewOrExpire(env, id, at)).toBe("skipped");
    // The operator raises the limit again; B buys.
    await limitIp(1);
    heldB.release();
    expect(await second).toBe("renewed");

    const { next, live } = await renewalsOf(id);
    expect(live.map((r) => r.id)).toEqual([next]);
    await expectBooksBalance(t);
  });
});

function unwrapOk<T>(outcome: { ok: true; value: T } | { ok: false; error: unknown }): T {
  if (!outcome.ok) throw new Error(JSON.stringify(outcome.error));
  return outcome.value;
}
