import { describe, expect, it } from "vitest";
import { call, expectOk, tenantWithCatalog } from "../helpers";

/**
 * A write that reads no body (a cancel, a revocation, a rotation) refuses one it was sent, as it
 * refuses query parameters it does not read: ignored, `DELETE /v1/subscriptions/{id}/` with
 * `{"dry_run": true}` cancelled what its sender meant only to try. An empty body, or JSON `null`
 * or `{}`, is no body; anything else that is not JSON answers 415, as every body does.
 */

async function buy(partnerKey: string, customer: string) {
  const r = await call("POST", "/v1/subscriptions/", {
    token: partnerKey,
    body: { objects: [{ customer, resource: "cpu", amount: 1, period: "1 month" }] },
  });
  expect(r.status, r.text).toBe(201);
  return r.body.objects[0].id as string;
}

describe("a body sent to a write that reads none", () => {
  it("answers 400 naming each member, or 415 when it is not JSON, and cancels nothing", async () => {
    const t = await tenantWithCatalog(1);
    const id = await buy(t.partnerKey, t.customers[0] as string);
    const path = `/v1/subscriptions/${id}/`;
    const member = await call("DELETE", path, { token: t.partnerKey, body: { dry_run: true } });
    expect(member.status, member.text).toBe(400);
    expect(member.body.errors).toEqual([{ point: "/dry_run", message: expect.any(String) }]);
    const typed = await call("DELETE", path, {
      token: t.partnerKey,
      raw: "dry_run=1",
      headers: { "content-type": "application/x-www-form-urlencoded" },
    });
    expect(typed.status, typed.text).toBe(415);
    const read = await expectOk(call("GET", path, { token: t.partnerKey }));
    expect(read.status).toBe("active");

    const cancelled = await call("DELETE", path, { token: t.partnerKey, raw: "null" });
    expect(cancelled.status, cancelled.text).toBe(200);
  });

  it("keeps a credential that a revocation with a stray body names", async () => {
    const t = await tenantWithCatalog(1);
    const token = t.userTokens[0] as string;
    const credential = token.split(".")[1];
    const r = await call("DELETE", `/v1/credentials/${credential}`, {
      token: t.partnerKey,
      body: { reason: "test" },
    });
    expect(r.status, r.text).toBe(400);
    expect((await call("GET", "/account/v1.0/quotas", { token })).status).toBe(200);
    const empty = await call("DELETE", `/v1/credentials/${credential}`, { token: t.partnerKey, raw: "{}" });
    expect(empty.status, empty.text).toBe(200);
  });
});
