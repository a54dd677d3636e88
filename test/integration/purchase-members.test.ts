import { describe, expect, it } from "vitest";
import { call, expectOk, tenantWithCatalog } from "../helpers";

/**
 * A purchase or quote object refuses a member it neither reads nor is a subscription's own (400
 * naming it, nothing bought), as every other /v1 body does: a misspelt `auto_renw` was dropped
 * and the subscription bought without renewal, a misspelt `start_tme` bought it from now. What a
 * subscription answers, and CloudSigma's read-only members, are still taken and not read, so a
 * client that sends a subscription back as it read it keeps working.
 */

describe("members of a purchase object", () => {
  it("answers 400 naming a member it does not take, and buys nothing", async () => {
    const t = await tenantWithCatalog(1);
    const object = { customer: t.customers[0], resource: "cpu", amount: 1, period: "1 month" };
    for (const path of ["/v1/subscriptions/", "/v1/subscriptioncalculator/"]) {
      for (const typo of ["auto_renw", "start_tme", "quantitiy"]) {
        const r = await call("POST", path, {
          token: t.partnerKey,
          body: { objects: [{ ...object, [typo]: 1 }] },
        });
        expect(r.status, `${path} ${typo}: ${r.text}`).toBe(400);
        expect(r.body.errors.map((e: { point: string }) => e.point)).toEqual([`/objects/0/${typo}`]);
      }
    }
    const listed = await expectOk(call("GET", "/v1/subscriptions/?status=all", { token: t.partnerKey }));
    expect(listed.objects).toEqual([]);
  });

  it("takes a subscription sent back as it was read, reading only what a purchase reads", async () => {
    const t = await tenantWithCatalog(1);
    const object = { customer: t.customers[0], resource: "cpu", amount: 1, period: "1 month" };
    const first = (
      await expectOk(
        call("POST", "/v1/subscriptions/", { token: t.partnerKey, body: { objects: [object] } }),
        201,
      )
    ).objects[0];
    const again = {
      ...first,
      discount_percent: "0",
      resource_uri: `/api/2.0/subscriptions/${first.id}/`,
      start_time: null,
      end_time: null,
    };
    const bought = await expectOk(
      call("POST", "/v1/subscriptions/", { token: t.partnerKey, body: { objects: [again] } }),
      201,
    );
    expect(bought.objects[0].id).not.toBe(first.id);
    expect(bought.objects[0]).toMatchObject({ resource: "cpu", amount: 1, period: "1 month" });
  });
});
