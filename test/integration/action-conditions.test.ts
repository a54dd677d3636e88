import { describe, expect, it } from "vitest";
import { expectBooksBalance } from "../books";
import { call, expectOk, type Tenant, tenantWithCatalog } from "../helpers";

/** `If-Match` on the subscription actions: a stale tag answers 412 and nothing is bought or changed. */
describe("If-Match on POST /v1/subscriptions/{id}/action", () => {
  async function bought(t: Tenant, resource = "cpu") {
    const r = await expectOk(
      call("POST", "/v1/subscriptions/", {
        token: t.partnerKey,
        body: { objects: [{ customer: t.customers[0], resource, amount: 1, period: "1 month" }] },
      }),
      201,
    );
    const id = r.objects[0].id as string;
    const read = await call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey });
    return { id, etag: read.headers.get("etag") as string };
  }
  const action = (t: Tenant, id: string, what: string, etag: string, body: object = {}) =>
    call("POST", `/v1/subscriptions/${id}/action/?do=${what}`, {
      token: t.partnerKey,
      body,
      headers: { "if-match": etag },
    });

  it("a toggle with a stale tag answers 412 and leaves auto_renew as the later change set it", async () => {
    const t = await tenantWithCatalog(1, 100);
    const { id, etag } = await bought(t);
    await expectOk(
      call("PATCH", `/v1/subscriptions/${id}/`, { token: t.partnerKey, body: { auto_renew: true } }),
    );
    const stale = await action(t, id, "auto_renew", etag);
    expect(stale.status, stale.text).toBe(412);
    expect(
      (await expectOk(call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey }))).auto_renew,
    ).toBe(true);
    const fresh = (await call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey })).headers.get(
      "etag",
    );
    expect((await expectOk(action(t, id, "auto_renew", fresh as string))).auto_renew).toBe(false);
  });

  it("an extension with a stale tag answers 412 and buys nothing", async () => {
    const t = await tenantWithCatalog(1, 100);
    const { id, etag } = await bought(t);
    const first = await expectOk(action(t, id, "extend", etag));
    expect(first.id).not.toBe(id);
    const again = await action(t, id, "extend", etag);
    expect(again.status, again.text).toBe(412);
    const all = await expectOk(call("GET", "/v1/subscriptions/?status=all", { token: t.partnerKey }));
    expect(all.objects).toHaveLength(2);
    await expectBooksBalance(t);
  });

  it("a stop with a stale tag answers 412 and the cloud runs on", async () => {
    const t = await tenantWithCatalog(1, 100);
    const { id, etag } = await bought(t, "cumulus");
    await expectOk(call("POST", `/v1/subscriptions/${id}/action/?do=start`, { token: t.partnerKey }));
    expect((await action(t, id, "stop", etag)).status).toBe(412);
    expect((await expectOk(call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey }))).run_state).toBe(
      "running",
    );
  });
});
