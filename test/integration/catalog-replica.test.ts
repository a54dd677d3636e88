import { describe, expect, it } from "vitest";
import { call, expectOk, replicaBehind, snapshotOf, tenantWithCatalog, unique } from "../helpers";

/**
 * README "Catalog changes": a change to an existing product (its price) applies at once on the
 * instance that took the PUT. A GET on that instance (a list filtered by `resource`) refills the
 * catalog it keeps; its request's session may read a replica that has not applied the PUT yet, so
 * the catalog is read from the primary (a review of 2026-12-03 found the old product kept 30 s
 * and purchases priced with it).
 */

describe("the catalog an instance keeps after a PUT it took", () => {
  it("prices a purchase at the new price at once, whatever a replica says", async () => {
    const t = await tenantWithCatalog(1);
    const id = unique("gpu")
      .replace(/[^a-z0-9-]/gi, "-")
      .toLowerCase();
    const put = (unit_price: string) =>
      expectOk(
        call("PUT", `/v1/products/${id}`, {
          token: t.operator,
          body: {
            name: id,
            kind: "timed",
            unit: "GHz",
            unit_price,
            currency: "EUR",
            quota_resource: "stratus.cpu",
            aliases: [],
          },
        }),
      );
    await put("0.02");
    const object = { customer: t.customers[0], resource: id, amount: 1, period: "1 week" };
    const before = await expectOk(
      call("POST", "/v1/subscriptions", { token: t.partnerKey, body: { objects: [object] } }),
      201,
    );
    // The replica: the catalog as it is now, before the price change.
    const lagging = replicaBehind("products", await snapshotOf("products"));

    await put("0.20"); // this instance takes the PUT: the change applies here at once
    // A list filtered by the product, on this instance, read from the replica.
    const listed = await call("GET", `/v1/subscriptions?resource=${id}`, {
      token: t.partnerKey,
      env: lagging,
    });
    expect(listed.status, listed.text).toBe(200);

    const quote = await expectOk(
      call("POST", "/v1/subscriptioncalculator", { token: t.partnerKey, body: { objects: [object] } }),
    );
    const bought = await expectOk(
      call("POST", "/v1/subscriptions", { token: t.partnerKey, body: { objects: [object] } }),
      201,
    );
    // The same term (to the second) at ten times the unit price: ten times the price.
    const old = Number(before.objects[0].price);
    expect(Number(quote.objects[0].price)).toBeCloseTo(old * 10, 0);
    expect(Number(bought.objects[0].price)).toBeCloseTo(old * 10, 0);
  });
});
