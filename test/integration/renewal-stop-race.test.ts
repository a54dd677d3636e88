import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { renewOrExpire } from "../../src/app/renewals";
import { subscriptionObject } from "../../src/objects/subscription-object";
import { expectBooksBalance, recoverAll } from "../books";
import {
  call,
  dailyTwoWeeksBehind,
  expectOk,
  shardsHeld,
  type Tenant,
  tenantWithCatalog,
  usageOf,
} from "../helpers";

/**
 * auto_renew turned off, answered at once, between a renewal's plan (the term read as renewing, its
 * place reserved) and the create of its term: the partner was answered that nothing renews, and the
 * renewal created its term (off, so it renewed no further) and charged it. Found by a review of the
 * renewals racing the partner's stop (2026-12-05), holding the renewal's create as the cancel's race
 * test in renewal-races.test.ts does.
 */

let year = new Date().getUTCFullYear() + 55;
const noon = (y: number, month: number, day: number) => new Date(Date.UTC(y, month - 1, day, 12));

/** A term of 2 cpu, auto_renew on, from 1 February noon of a year of its own, for a month. */
async function dueTerm(t: Tenant) {
  const r = await expectOk(
    call("POST", "/v1/subscriptions/", {
      token: t.partnerKey,
      body: {
        objects: [
          {
            customer: t.customers[0],
            resource: "cpu",
            amount: 2,
            start_time: noon(year++, 2, 1).toISOString(),
            period: "1 month",
            auto_renew: true,
          },
        ],
      },
    }),
    201,
  );
  const sub = r.objects[0] as { id: string; end_time: string };
  const end = Date.parse(sub.end_time);
  return { id: sub.id, before: new Date(end - 60_000), over: new Date(end + 60_000) };
}

async function renewalLines(t: Tenant) {
  const rows = await env.DB.prepare(
    "SELECT amount_minor FROM charges WHERE partner_id = ? AND kind = 'renewal'",
  )
    .bind(t.partnerId)
    .all<{ amount_minor: number }>();
  return rows.results.map((r) => r.amount_minor);
}

/**
 * Runs the renewal of `id` at `at` held at its term's create, turns auto_renew off on `id` by
 * `off` meanwhile (answered 200, off), and lets the renewal finish: what it answered, and the
 * term it had planned.
 */
async function offWhileRenewing(t: Tenant, id: string, at: Date, off: Off, catchUp = false) {
  const slow = shardsHeld("create");
  const running = renewOrExpire(slow.env, id, at, catchUp);
  await slow.reached;
  const planned = (await subscriptionObject(env, id).get())?.renewal?.subscription;
  const [method, path, body] = off;
  const answer = await expectOk(call(method, path(id), { token: t.partnerKey, ...(body ? { body } : {}) }));
  expect({ auto_renew: answer.auto_renew, descendants: answer.descendants }).toEqual({
    auto_renew: false,
    descendants: [],
  });
  slow.release();
  const outcome = await running;
  await recoverAll(t);
  return { outcome, planned: planned as string };
}

type Off = readonly [string, (id: string) => string, { auto_renew: boolean } | undefined];
const offs: readonly Off[] = [
  ["PATCH", (id) => `/v1/subscriptions/${id}/`, { auto_renew: false }],
  ["POST", (id) => `/v1/subscriptions/${id}/action/?do=auto_renew`, { auto_renew: false }],
  ["POST", (id) => `/v1/subscriptions/${id}/action/?do=auto_renew`, undefined],
];

describe("auto_renew turned off while the term's renewal is on its way", () => {
  for (const off of offs) {
    it(`(${off[0]} ${off[2] ? "auto_renew: false" : "a toggle"}) gives the renewal up: nothing is bought, the term expires`, async () => {
      const t = await tenantWithCatalog(1, 100);
      const { id, before, over } = await dueTerm(t);
      const { outcome, planned } = await offWhileRenewing(t, id, before, off);
      expect(outcome).toBe("skipped");
      expect((await subscriptionObject(env, planned).get())?.endReason).toBe("failed");
      expect((await subscriptionObject(env, id).get())?.nextId).toBeNull();
      expect(await renewalLines(t)).toEqual([]);
      expect(await usageOf(t, 0, "cpu")).toMatchObject({ usage: 2, pending: 0 });
      // At its end the term expires, renewing nothing, and gives its quota back.
      expect(await renewOrExpire(env, id, over)).toBe("expired");
      expect(await renewalLines(t)).toEqual([]);
      expect(await usageOf(t, 0, "cpu")).toMatchObject({ usage: 0, pending: 0 });
      await expectBooksBalance(t);
    });
  }

  it("on the chain's first term, as grouped lists name it, gives the last term's renewal up", async () => {
    const t = await tenantWithCatalog(1, 100);
    const { id, before } = await dueTerm(t);
    expect(await renewOrExpire(env, id, before)).toBe("renewed");
    const last = (await subscriptionObject(env, id).get())?.nextId as string;
    const end = Date.parse((await subscriptionObject(env, last).get())?.endTime as string);
    const slow = shardsHeld("create");
    const running = renewOrExpire(slow.env, last, new Date(end - 60_000));
    await slow.reached;
    await expectOk(
      call("PATCH", `/v1/subscriptions/${id}/`, { token: t.partnerKey, body: { auto_renew: false } }),
    );
    slow.release();
    expect(await running).toBe("skipped");
    await recoverAll(t);
    expect((await subscriptionObject(env, last).get())?.nextId).toBeNull();
    expect(await renewalLines(t)).toHaveLength(1);
    await expectBooksBalance(t);
  });

  it("of a catch-up renewal gives that renewal up: the chain stops where the partner stopped it", async () => {
    const { t, sub, at } = await dailyTwoWeeksBehind(year++);
    // The run's renewal of the first term is over already: its own renewal follows (`catchUp`).
    expect(await renewOrExpire(env, sub.id, at)).toBe("renewed");
    const second = (await subscriptionObject(env, sub.id).get())?.nextId as string;
    const { outcome } = await offWhileRenewing(t, second, at, offs[0] as Off, true);
    expect(outcome).toBe("expired");
    expect((await subscriptionObject(env, second).get())?.endReason).toBe("expired");
    expect(await renewalLines(t)).toHaveLength(1);
    expect(await usageOf(t, 0, "cpu")).toMatchObject({ usage: 0, pending: 0 });
    await expectBooksBalance(t);
  });
});
