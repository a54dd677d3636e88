import { describe, expect, it } from "vitest";
import { basic, call, customerKeyed, expectOk, unique } from "../helpers";

/**
 * An extension "is actually just another subscription that is linked to the original", and the
 * calculator "is identical to the subscriptions call" (subscriptions-api.md): a new term of a
 * chain, by hand or renewed, costs what the calculator quotes for it, at today's price.
 */
describe("extension pricing", () => {
  it("an extension (and so a renewal) is charged what the calculator quotes for its term, at today's price", async () => {
    const t = await customerKeyed();
    const product = unique("disk");
    const put = (unit_price: string) =>
      expectOk(
        call("PUT", `/v1/products/${product}`, {
          token: t.operator,
          body: {
            name: product,
            kind: "timed",
            unit: "GB",
            unit_price,
            currency: "EUR",
            quota_resource: `stratus.${product}`,
            aliases: [],
          },
        }),
      );
    await expectOk(
      call("PUT", `/v1/resources/stratus.${product}`, {
        token: t.operator,
        body: { service: "stratus", unit: "GB" },
      }),
    );
    await put("0.10");
    await expectOk(
      call("PUT", `/v1/customers/${t.customers[0]}/quotas`, {
        token: t.operator,
        body: { resource: `stratus.${product}`, limit: 100 },
      }),
    );
    const auth = basic("me", t.customerKey);
    const first = (
      await expectOk(
        call("POST", "/v1/subscriptions/", {
          headers: auth,
          body: { objects: [{ amount: 10, period: "1 month", resource: product }] },
        }),
        201,
      )
    ).objects[0];

    await put("0.20"); // the operator doubles the price after the first purchase

    // The calculator quoting the very term the extension will buy (start = chain end, 1 month).
    const quote = await expectOk(
      call("POST", "/v1/subscriptioncalculator/", {
        headers: auth,
        body: { objects: [{ amount: 10, resource: product, start_time: first.end_time, period: "1 month" }] },
      }),
    );
    const extended = await expectOk(
      call("POST", `/v1/subscriptions/${first.id}/action/?do=extend`, { headers: auth, body: {} }),
    );
    expect(extended.start_time).toBe(quote.objects[0].start_time);
    expect(extended.end_time).toBe(quote.objects[0].end_time);
    expect(extended.price).toBe(quote.objects[0].price);
    expect(Number(extended.price)).toBeGreaterThan(Number(first.price));
  });
});
