import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { syndicationOf } from "../../src/db/webhooks";
import { call, expectOk, syndicatedProduct, tenant, unique } from "../helpers";

/** A vendor reads the orders and buyers of its products' subscriptions: who that is never changes once sold. */
describe("a product's vendor", () => {
  const productBody = (id: string, vendor?: string) => ({
    name: id,
    kind: "license",
    unit: "seat",
    unit_price: "1.00",
    currency: "EUR",
    quota_resource: `stratus.${id}`,
    ...(vendor ? { delivery: "syndicated", vendor, endpoint: "https://crm.example/hooks" } : {}),
  });

  it("changes while the product is unsold, with a new signing secret, the old one dropped at once", async () => {
    const t = await tenant({ customers: 1 });
    const { product, secret } = await syndicatedProduct(t);
    // A rotation keeps the old secret valid for a day: a new vendor drops both.
    await expectOk(call("POST", `/v1/products/${product}/signing-secret`, { token: t.operator }));
    const other = await expectOk(
      call("POST", "/v1/vendors", { token: t.operator, body: { name: "Other" } }),
      201,
    );
    const moved = await expectOk(
      call("PUT", `/v1/products/${product}`, { token: t.operator, body: productBody(product, other.id) }),
    );
    expect(moved.vendor).toBe(other.id);
    expect(moved.signing_secret).toMatch(/^whsec_/);
    expect(moved.signing_secret).not.toBe(secret);
    const row = await syndicationOf(env, product);
    expect(row).toMatchObject({ signingSecret: moved.signing_secret, previousSecret: null });
    // The same vendor again: nothing new to show.
    const again = await expectOk(
      call("PUT", `/v1/products/${product}`, { token: t.operator, body: productBody(product, other.id) }),
    );
    expect(again).not.toHaveProperty("signing_secret");
  });

  it("does not change once sold (409, nothing changes): its buyers were never the new vendor's", async () => {
    const t = await tenant({ customers: 1 });
    const id = unique("seats");
    await expectOk(
      call("PUT", `/v1/resources/stratus.${id}`, { token: t.operator, body: { service: "stratus" } }),
    );
    await expectOk(call("PUT", `/v1/products/${id}`, { token: t.operator, body: productBody(id) }));
    await expectOk(
      call("PUT", `/v1/customers/${t.customers[0]}/quotas`, {
        token: t.operator,
        body: { resource: `stratus.${id}`, limit: 10 },
      }),
    );
    await expectOk(
      call("POST", "/v1/subscriptions/", {
        token: t.partnerKey,
        body: { objects: [{ customer: t.customers[0], resource: id, amount: 1, period: "1 month" }] },
      }),
      201,
    );
    const vendor = await expectOk(
      call("POST", "/v1/vendors", { token: t.operator, body: { name: "Late" } }),
      201,
    );
    const r = await call("PUT", `/v1/products/${id}`, {
      token: t.operator,
      body: productBody(id, vendor.id),
    });
    expect(r.status, r.text).toBe(409);
    expect(r.body.errors).toEqual([
      { point: "/vendor", message: "cannot change once the product has been sold" },
    ]);
    const after = await expectOk(call("GET", `/v1/products/${id}`, { token: t.operator }));
    expect(after.delivery).toBe("builtin");
    // The same product otherwise: a new price is taken.
    await expectOk(
      call("PUT", `/v1/products/${id}`, {
        token: t.operator,
        body: { ...productBody(id), unit_price: "2.00" },
      }),
    );
  });
});
