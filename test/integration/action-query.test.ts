import { describe, expect, it } from "vitest";
import { call, expectOk, type Tenant, tenantWithCatalog } from "../helpers";

/**
 * The subscription actions read their values from the JSON body; the query carries `do` only.
 * spec/subscriptions-api.md has the value of `?do=auto_renew` and the `period`/`end_time` of
 * `?do=extend` "specified in the request", which a client may put in the query string: ignored
 * there, a toggle meant to switch renewal off switched it on, and an extension meant for a week
 * bought (and charged) the subscription's whole length again.
 */
describe("POST /v1/subscriptions/{id}/action: the query takes `do` only", () => {
  async function bought(t: Tenant) {
    const r = await expectOk(
      call("POST", "/v1/subscriptions/", {
        token: t.partnerKey,
        body: { objects: [{ customer: t.customers[0], resource: "cpu", amount: 1, period: "1 month" }] },
      }),
      201,
    );
    return r.objects[0].id as string;
  }
  const all = async (t: Tenant) =>
    (await expectOk(call("GET", "/v1/subscriptions/?status=all", { token: t.partnerKey }))).objects;

  it("?do=auto_renew&auto_renew=false answers 400 naming the parameter, and the flag stays as it was", async () => {
    const t = await tenantWithCatalog(1, 100);
    const id = await bought(t);
    const r = await call("POST", `/v1/subscriptions/${id}/action/?do=auto_renew&auto_renew=false`, {
      token: t.partnerKey,
    });
    expect(r.status, r.text).toBe(400);
    expect(r.body.errors).toEqual([{ point: "/auto_renew", message: expect.stringMatching(/body/) }]);
    const after = await expectOk(call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey }));
    expect(after.auto_renew).toBe(false);
  });

  it("?do=extend&period=… answers 400 naming the parameter and buys nothing", async () => {
    const t = await tenantWithCatalog(1, 100);
    const id = await bought(t);
    const r = await call("POST", `/v1/subscriptions/${id}/action/?do=extend&period=1%20week`, {
      token: t.partnerKey,
    });
    expect(r.status, r.text).toBe(400);
    expect(r.body.errors).toEqual([{ point: "/period", message: expect.stringMatching(/body/) }]);
    expect(await all(t)).toHaveLength(1);
    // The same values in the body are read as before.
    const ext = await expectOk(
      call("POST", `/v1/subscriptions/${id}/action/?do=extend`, {
        token: t.partnerKey,
        body: { period: "1 week" },
      }),
    );
    expect(ext.period).toBe("1 week");
  });
});
