import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { assignIds, buy, plan } from "../../src/app/subscriptions";
import { call, deliverRenewals as deliver, expectOk, type Tenant, tenantWithCatalog } from "../helpers";

/**
 * A term bought with an end_time is extended and renewed for "the exact interval" (subscriptions
 * spec, Extending), and its example: created on 1 February with an end date of 1 March, it "will
 * be extended for 28 days". Bought for now, it starts at the hour it was bought: whatever that
 * hour, its extensions and renewals last its whole days.
 */

const DAY = 86_400_000;
let year = new Date().getUTCFullYear() + 60;
const at = (y: number, month: number, day: number, hour: number, minute = 0) =>
  new Date(Date.UTC(y, month - 1, day, hour, minute));

/** A cpu term of amount 1 (0.02 an hour) bought for now at `now`, to `end`. */
async function boughtAt(t: Tenant, now: Date, end: Date, autoRenew = false) {
  const object = {
    customer: t.customers[0]!,
    resource: "cpu",
    amount: 1,
    end_time: end,
    auto_renew: autoRenew,
  };
  const planned = await plan(env, t.partnerId, [object], now);
  const bought = await buy(env, t.partnerId, planned.subscriptions, assignIds(planned.subscriptions), now);
  return bought.subscriptions[0]!;
}

const read = (t: Tenant, id: string) =>
  expectOk(call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey }));
const extend = (t: Tenant, id: string) =>
  expectOk(call("POST", `/v1/subscriptions/${id}/action/?do=extend`, { token: t.partnerKey }));
const days = (s: { start_time: string; end_time: string }) =>
  (Date.parse(s.end_time) - Date.parse(s.start_time)) / DAY;

describe("an end_time term bought for now", () => {
  it("1 February, at any hour, to 1 March extends 28 days (29 in a leap year), charged for them", async () => {
    const t = await tenantWithCatalog(1, 100);
    for (const hour of [0, 9, 11, 12, 15, 23]) {
      const y = year++;
      const february = (at(y, 3, 1, 0).getTime() - at(y, 2, 1, 0).getTime()) / DAY;
      const term = await boughtAt(t, at(y, 2, 1, hour, hour === 12 ? 0 : 30), at(y, 3, 1, 0));
      expect(term.endTime).toBe(at(y, 3, 1, 12).toISOString());
      const extension = await extend(t, term.id);
      expect(extension.start_time, `bought at ${hour}:30`).toBe(at(y, 3, 1, 12).toISOString());
      expect(days(extension), `bought at ${hour}:30`).toBe(february);
      expect(extension.price, `bought at ${hour}:30`).toBe((february * 24 * 0.02).toFixed(2));
    }
  });

  it("renews for its whole days, every renewal as long as the one before", async () => {
    const t = await tenantWithCatalog(1, 100);
    const y = year++;
    const term = await boughtAt(t, at(y, 2, 1, 9), at(y, 2, 8, 0), true);
    let last = await read(t, term.id);
    for (const end of [15, 22]) {
      await deliver([
        { subscription: last.id, at: new Date(Date.parse(last.end_time) - 60_000).toISOString() },
      ]);
      const root = await read(t, term.id);
      last = await read(t, root.descendants.at(-1));
      expect(last.end_time).toBe(at(y, 2, end, 12).toISOString());
      expect(last.price).toBe("3.36");
    }
  });

  it("of less than a day extends a day", async () => {
    const t = await tenantWithCatalog(1, 100);
    const y = year++;
    const term = await boughtAt(t, at(y, 2, 1, 11), at(y, 2, 1, 11, 30));
    expect(days(await extend(t, term.id))).toBe(1);
  });
});
