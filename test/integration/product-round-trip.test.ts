import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { syndicationOf } from "../../src/db/webhooks";
import { call, expectOk, syndicatedProduct, tenant } from "../helpers";

/**
 * `PUT /v1/products/{id}` takes the product as `GET` answers it (README), and `GET` does not show a
 * syndicated product's endpoint (set apart, by `PUT …/endpoint`): sent back, the product keeps it.
 */
describe("a syndicated product sent back as GET answers it", () => {
  it("updates, under If-Match too, and keeps its endpoint and secret", async () => {
    const t = await tenant({ customers: 1 });
    const { product, vendorId } = await syndicatedProduct(t, "keeps.example");
    await expectOk(
      call("PUT", `/v1/products/${product}/endpoint`, {
        token: t.operator,
        body: { endpoint: "https://moved.example/hooks" },
      }),
    );
    const before = await syndicationOf(env, product);
    const read = await call("GET", `/v1/products/${product}`, { token: t.operator });
    expect(read.body).not.toHaveProperty("endpoint");

    const renamed = await call("PUT", `/v1/products/${product}`, {
      token: t.operator,
      body: { ...read.body, name: "CRM seats, renamed" },
      headers: { "if-match": read.headers.get("etag") ?? "" },
    });
    expect(renamed.status, renamed.text).toBe(200);
    expect(renamed.body).toMatchObject({
      name: "CRM seats, renamed",
      delivery: "syndicated",
      vendor: vendorId,
    });
    expect(renamed.body).not.toHaveProperty("signing_secret");
    const again = await call("PUT", `/v1/products/${product}`, { token: t.operator, body: read.body });
    expect(again.status, again.text).toBe(200);
    expect(await syndicationOf(env, product)).toEqual(before);
  });

  it("still needs an endpoint from a product that has none, or that changes vendor", async () => {
    const t = await tenant({ customers: 1 });
    const { product } = await syndicatedProduct(t, "first.example");
    const read = await expectOk(call("GET", `/v1/products/${product}`, { token: t.operator }));
    const other = await expectOk(
      call("POST", "/v1/vendors", { token: t.operator, body: { name: "Other" } }),
      201,
    );
    const moved = await call("PUT", `/v1/products/${product}`, {
      token: t.operator,
      body: { ...read, vendor: other.id },
    });
    expect(moved.status, moved.text).toBe(400);
    expect(moved.body.errors).toEqual([
      { point: "/endpoint", message: "is required when delivery is syndicated" },
    ]);
    const fresh = await call("PUT", `/v1/products/${product}-new`, {
      token: t.operator,
      body: { ...read, id: undefined },
    });
    expect(fresh.status, fresh.text).toBe(400);
    expect((await syndicationOf(env, product))?.vendorId).toBe(read.vendor);
  });
});
