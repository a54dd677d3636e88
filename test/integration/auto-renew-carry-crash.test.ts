import { describe, expect, it } from "vitest";
import { call, expectOk, shardsAround, tenantWithCatalog } from "../helpers";

/**
 * auto_renew set through a chain's first term is carried to every later term, and the chain's last
 * one decides whether it renews. A carry that died on the way (an instance lost on a middle term)
 * answered 500 with the last term still renewing: the cron went on buying, and charging, terms the
 * partner had turned off. The last term now takes the flag first.
 */

/** The subscription shards, with `setAutoRenew` of subscription `dying` failing as a lost instance does. */
const shardsLosing = (dying: string) =>
  shardsAround((method, args, call) => {
    if (method === "setAutoRenew" && args[0] === dying)
      throw new Error("the Durable Object's instance was lost");
    return call();
  });

describe("auto_renew carried along a chain, the carry dying on a middle term", () => {
  it("has turned the chain's renewal off already, and running it again finishes the terms between", async () => {
    const t = await tenantWithCatalog(1, 10);
    const token = t.partnerKey;
    const bought = await expectOk(
      call("POST", "/v1/subscriptions/", {
        token,
        body: {
          objects: [
            { customer: t.customers[0], resource: "cpu", amount: 1, period: "1 day", auto_renew: true },
          ],
        },
      }),
      201,
    );
    const first = bought.objects[0].id as string;
    const middle = (await expectOk(call("POST", `/v1/subscriptions/${first}/action/?do=extend`, { token })))
      .id;
    const last = (await expectOk(call("POST", `/v1/subscriptions/${middle}/action/?do=extend`, { token })))
      .id;
    const flag = async (id: string) =>
      (await expectOk(call("GET", `/v1/subscriptions/${id}/`, { token }))).auto_renew as boolean;
    expect([await flag(first), await flag(middle), await flag(last)]).toEqual([true, true, true]);

    const off = `/v1/subscriptions/${first}/action/?do=auto_renew`;
    const died = await call("POST", off, { token, body: { auto_renew: false }, env: shardsLosing(middle) });
    expect(died.status, died.text).toBe(500);
    // The last term decides: it no longer renews, whatever the terms between show yet.
    expect(await flag(last)).toBe(false);
    expect(await flag(middle)).toBe(true);

    await expectOk(call("POST", off, { token, body: { auto_renew: false } }));
    expect([await flag(first), await flag(middle), await flag(last)]).toEqual([false, false, false]);
  }, 60_000);
});
