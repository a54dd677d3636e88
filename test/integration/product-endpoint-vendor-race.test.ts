import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { syndicationOf } from "../../src/db/webhooks";
import { call, expectOk, firstStatementHeld, gate, syndicatedProduct, tenant } from "../helpers";

/**
 * A syndicated product sent back without its endpoint keeps it only while it stays with the
 * vendor it was read with (README: "a new vendor names its own"). A PUT moving it to another vendor
 * between the read and the write of one that keeps the endpoint must not leave the product with
 * the first vendor and the other vendor's endpoint, where the first vendor's buyers' events would go.
 */
describe("a syndicated product kept by a PUT while another PUT moves it to another vendor", () => {
  it("never ends with one vendor and the other vendor's endpoint", async () => {
    const t = await tenant({ customers: 1 });
    const { product, vendorId } = await syndicatedProduct(t, "first.example");
    const read = await expectOk(call("GET", `/v1/products/${product}`, { token: t.operator }));
    const other = await expectOk(
      call("POST", "/v1/vendors", { token: t.operator, body: { name: "Other" } }),
      201,
    );
    const held = gate();
    const kept = call("PUT", `/v1/products/${product}`, {
      token: t.operator,
      body: { ...read, name: "renamed" },
      env: Object.create(env, {
        DB: { value: firstStatementHeld(env.DB, /^\s*(insert into|update)\s+"products"/i, held) },
      }) as Env,
    });
    await held.reached;
    const moved = await call("PUT", `/v1/products/${product}`, {
      token: t.operator,
      body: { ...read, vendor: other.id, endpoint: "https://other.example/hooks" },
    });
    expect(moved.status, moved.text).toBe(200);
    held.release();
    const first = await kept;
    const now = await syndicationOf(env, product);
    // Either the first PUT is refused (the vendor moved under it), or it names its own vendor's
    // endpoint: never the first vendor with the other's endpoint and secret.
    if (now?.vendorId === vendorId) expect(now.endpoint).toBe("https://first.example/hooks");
    else expect(now).toMatchObject({ vendorId: other.id, endpoint: "https://other.example/hooks" });
    expect(first.status, first.text).toBe(409);
    expect(now).toMatchObject({ vendorId: other.id, endpoint: "https://other.example/hooks" });
    expect(now?.signingSecret).toBeTruthy();
  });
});
