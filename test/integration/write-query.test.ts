import { describe, expect, it } from "vitest";
import { buyOne, call, expectOk, tenantWithCatalog } from "../helpers";

/**
 * A write reads only the query parameters it declares: one that declares none refuses any, 400
 * naming it, and writes nothing. Ignored, `DELETE …?dry_run=1` would cancel the subscription a
 * client meant only to try. A read's stray parameters are left alone.
 */
describe("a query parameter on a write that reads none", () => {
  it("is refused on a cancel, 400 naming it, and the subscription stays live", async () => {
    const t = await tenantWithCatalog(1, 100);
    const id = (await buyOne(t, { resource: "cpu", amount: 1, period: "1 month" })).id as string;
    const tried = await call("DELETE", `/v1/subscriptions/${id}/?dry_run=1`, {
      token: t.partnerKey,
    });
    expect(tried.status, tried.text).toBe(400);
    expect(tried.headers.get("content-type")).toBe("application/problem+json");
    expect((tried.body.errors as { point: string }[]).map((e) => e.point).sort()).toEqual(["/dry_run"]);
    const patched = await call("PATCH", `/v1/subscriptions/${id}/?amount=3`, {
      token: t.partnerKey,
      body: { auto_renew: true },
    });
    expect(patched.status, patched.text).toBe(400);
    const read = await expectOk(
      call("GET", `/v1/subscriptions/${id}/?fields=status`, { token: t.partnerKey }),
    );
    expect(read).toMatchObject({ id, status: "active", auto_renew: false, ended_at: null });
    await expectOk(call("DELETE", `/v1/subscriptions/${id}/`, { token: t.partnerKey }));
  });

  it("is refused by the quota API in its own format, and no commission is issued", async () => {
    const t = await tenantWithCatalog(1, 100);
    const provisions = [{ holder: t.customers[0], source: "system", resource: t.resources[0], quantity: 1 }];
    const r = await call("POST", "/account/v1.0/commissions?force=true", {
      token: t.serviceToken,
      body: { provisions },
    });
    expect(r.status, r.text).toBe(400);
    expect(r.body).toEqual({ badRequest: { message: expect.stringContaining("/force"), code: 400 } });
    expect(await expectOk(call("GET", "/account/v1.0/commissions", { token: t.serviceToken }))).toEqual([]);
  });
});
