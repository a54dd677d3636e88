import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { armFault, disarmFaults } from "../../src/domain/faults";
import { call, expectOk, syndicatedProduct, tenant, vendorTokenOf, withCatalog } from "../helpers";

/**
 * A keyed rotation of a product's signing secret whose first attempt rotated and died before it
 * answered (the answer shows a secret, so it is never kept: the retry rotates again, README
 * "Idempotency"). For 24 hours after a rotation deliveries are signed with the new secret and the
 * one before it, which the vendor's receiver still verifies with. Before, the retry's rotation made
 * the first attempt's secret, which nobody ever saw, the previous one: the secret the receiver had
 * stopped signing at once, and every delivery failed verification until the new one was installed.
 */

afterEach(() => disarmFaults());

const secretsOf = (product: string) =>
  env.DB.prepare("SELECT signing_secret AS now, previous_secret AS previous FROM products WHERE id = ?")
    .bind(product)
    .first<{ now: string; previous: string | null }>();

describe("a keyed rotation of a signing secret retried after its first attempt died", () => {
  it("keeps the secret from before the first attempt as the previous one", async () => {
    const t = await tenant({ customers: 1 });
    await withCatalog(t);
    const { product, vendorId, secret } = await syndicatedProduct(t);
    const token = await vendorTokenOf(t, vendorId);
    const rotate = () =>
      call("POST", `/v1/products/${product}/signing-secret`, {
        token,
        headers: { "idempotency-key": `rotate-${product}` },
      });
    armFault("request.answered");
    expect((await rotate()).status).toBe(500);
    const lost = await secretsOf(product);
    expect(lost?.previous).toBe(secret);
    const retried = await expectOk(rotate());
    expect(retried.signing_secret).not.toBe(lost?.now);
    expect(await secretsOf(product)).toEqual({ now: retried.signing_secret, previous: secret });
    // Sent again, it rotates again, the previous secret still the one the vendor had.
    const again = await expectOk(rotate());
    expect(await secretsOf(product)).toEqual({ now: again.signing_secret, previous: secret });
    // A new rotation (another key) moves the secret the vendor was last given to previous.
    const next = await expectOk(call("POST", `/v1/products/${product}/signing-secret`, { token }));
    expect(await secretsOf(product)).toEqual({ now: next.signing_secret, previous: again.signing_secret });
  });
});
