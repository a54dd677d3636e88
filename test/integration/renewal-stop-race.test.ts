import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { renewOrExpire } from "../../src/app/renewals";
import { subscriptionObject } from "../../src/objects/subscription-object";
import { expectBooksBalance, recoverAll } from "../books";
import {
  call,
  dailyTwoWeeksBehind,
  dueMonthlyTerm,
  expectOk,
  renewalCharges,
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
      const { id, before, over } = await dueMonthlyTerm(t, year++);
      const { outcome, planned } = await offWhileRenewing(t, id, before, off);
      expect(outcome).toBe("skipped");
      expect((await subscriptionObject(env, planned).get())?.endReason).toBe("failed");
      expect((await subscriptionObject(env, id).get())?.nextId).toBeNull();
      expect(await renewalCharges(t)).toEqual([]);
      expect(await usageOf(t, 0, "cpu")).toMatchObject({ usage: 2, pending: 0 });
      // At its end the term expires, renewing nothing, and gives its quota back.
      expect(await renewOrExpire(env, id, over)).toBe("expired");
      expect(await renewalCharges(t)).toEqual([]);
      expect(await usageOf(t, 0, "cpu")).toMatchObject({ usage: 0, pending: 0 });
      await expectBooksBalance(t);
    });
  }

  it("on the chain's first term, as grouped lists name it, gives the last term's renewal up", async () => {
    const t = await tenantWithCatalog(1, 100);
    const { id, before } = await dueMonthlyTerm(t, year++);
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
    expect(await renewalCharges(t)).toHaveLength(1);
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
    expect(await renewalCharges(t)).toHaveLength(1);
    expect(await usageOf(t, 0, "cpu")).toMatchObject({ usage: 0, pending: 0 });
    await expectBooksBalance(t);
  });
});
