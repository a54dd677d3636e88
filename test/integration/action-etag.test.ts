import { describe, expect, it } from "vitest";
import { call, expectOk, type Tenant, tenantWithCatalog } from "../helpers";

/**
 * README, "ETag and If-Match": the actions honour `If-Match`, and "the answer to a conditional
 * write carries the new `ETag`". A toggle, a start and a stop answer their own subscription, so
 * their answer carries its tag, the one a read answers next, for the client's next `If-Match`.
 */
describe("the ETag of an action's answer", () => {
  async function bought(t: Tenant, resource: string) {
    const body = { objects: [{ customer: t.customers[0], resource, amount: 1, period: "1 month" }] };
    const r = await expectOk(call("POST", "/v1/subscriptions/", { token: t.partnerKey, body }), 201);
    return r.objects[0].id as string;
  }
  const read = (t: Tenant, id: string) => call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey });

  async function conditional(t: Tenant, id: string, what: string) {
    const before = (await read(t, id)).headers.get("etag") as string;
    const answer = await call("POST", `/v1/subscriptions/${id}/action/?do=${what}`, {
      token: t.partnerKey,
      headers: { "if-match": before },
    });
    expect(answer.status, answer.text).toBe(200);
    const after = (await read(t, id)).headers.get("etag");
    expect(after).not.toBe(before);
    expect(answer.headers.get("etag"), what).toBe(after);
    return after as string;
  }

  it("a toggle under If-Match answers the subscription's new ETag, which the next If-Match uses", async () => {
    const t = await tenantWithCatalog(1, 100);
    const id = await bought(t, "cpu");
    await conditional(t, id, "auto_renew");
    await conditional(t, id, "auto_renew");
  });

  it("a start and a stop under If-Match answer the cloud's new ETag", async () => {
    const t = await tenantWithCatalog(1, 100);
    const id = await bought(t, "cumulus");
    await conditional(t, id, "start");
    await conditional(t, id, "stop");
  });
});
