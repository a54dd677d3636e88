import { describe, expect, it } from "vitest";
import {
  call,
  expectOk,
  syndicatedProduct,
  type Tenant,
  tenantWithCatalog,
  vendorEndpoints,
} from "../helpers";

vendorEndpoints();

/**
 * README, "Charges and statements": a term that would cost more than 2^53 − 1 minor units
 * (`MAX_PRICE_MINOR`) answers 400 and nothing is bought. A syndicated term is priced again when its
 * vendor deploys it (`startDeployed`), its period read again from then: "1 month" bought for
 * February (672 hours) and deployed on 1 March lasts 744 hours. So the purchase is checked at the
 * longest its deployment can make it (`longestDeployed`), else the charge written at the deployment
 * would pass the bound, no longer exact as the JS number D1 carries.
 */
describe("a syndicated purchase priced near the bound", () => {
  const priced = async (t: Tenant, product: string, unitPrice: string) => {
    const { id: _id, ...asRead } = await expectOk(
      call("GET", `/v1/products/${product}`, { token: t.operator }),
    );
    await expectOk(
      call("PUT", `/v1/products/${product}`, {
        token: t.operator,
        body: { ...asRead, unit_price: unitPrice },
      }),
    );
  };
  const month = (t: Tenant, product: string) => ({
    customer: t.customers[0],
    resource: product,
    amount: 1,
    start_time: "2027-02-01T12:00:00Z",
    period: "1 month",
  });

  /** February's month of `product` for the tenant's first customer, sent to `path` (a purchase or a quote). */
  const monthOf = (t: Tenant, product: string, path: string) =>
    call("POST", path, { token: t.partnerKey, body: { objects: [month(t, product)] } });

  it("is refused, 400 naming its amount, when its deployment could make it cost more than one term may", async () => {
    const t = await tenantWithCatalog(1, 100);
    const { product } = await syndicatedProduct(t);
    // 672 hours cost 87,360,000,000,006.72 (under the bound); 744 would cost 96,720,000,000,007.44.
    await priced(t, product, "130000000000.01");
    const bought = await monthOf(t, product, "/v1/subscriptions/");
    expect(bought.status, bought.text).toBe(400);
    expect(bought.body.errors).toEqual([
      {
        point: "/objects/0/amount",
        message: expect.stringMatching(/^deployed late, it costs \d+ minor units/),
      },
    ]);
    const quoted = await monthOf(t, product, "/v1/subscriptioncalculator/");
    expect(quoted.status, quoted.text).toBe(400);
    const listed = await expectOk(call("GET", "/v1/subscriptions/?status=all", { token: t.partnerKey }));
    expect(listed.objects).toEqual([]);
  });

  it("is accepted when its longest deployment stays within the bound", async () => {
    const t = await tenantWithCatalog(1, 100);
    const { product } = await syndicatedProduct(t);
    // 768 hours (31 days and the rounding's day) cost 89,856,000,000,000.00 at most.
    await priced(t, product, "117000000000.00");
    const bought = await monthOf(t, product, "/v1/subscriptions/");
    expect(bought.status, bought.text).toBe(202);
  });
});
