import { env } from "cloudflare:workers";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { MAX_GRACE_SECRETS } from "../../src/domain/webhooks";
import {
  call,
  eventually,
  expectOk,
  syndicatedProduct,
  tenant,
  unique,
  vendorTokenOf,
  withCatalog,
} from "../helpers";

/**
 * Every secret a rotation replaced signs deliveries for 24 hours, however many rotations came
 * after it within them. Before, a second rotation within a day replaced the one previous secret:
 * the secret from before the first stopped at once, and a receiver that had installed neither new
 * one (the vendor rotated twice, or a colleague rotated again meanwhile) failed every delivery.
 */

const received = new Map<string, { headers: Record<string, string>; body: string }>();

beforeAll(() => {
  const realFetch = globalThis.fetch;
  vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
    const request = new Request(input as RequestInfo, init);
    const host = new URL(request.url).host;
    if (!host.endsWith(".example")) return realFetch(input as RequestInfo, init);
    received.set(host, { headers: Object.fromEntries(request.headers), body: await request.text() });
    return new Response(null, { status: 204 });
  });
});
afterAll(() => vi.restoreAllMocks());

async function product() {
  const t = await tenant({ customers: 1 });
  await withCatalog(t);
  const host = `${unique("vendor")}.example`;
  const made = await syndicatedProduct(t, host);
  const token = await vendorTokenOf(t, made.vendorId);
  const rotate = () => call("POST", `/v1/products/${made.product}/signing-secret`, { token });
  return { t, host, ...made, rotate };
}

describe("signing secrets rotated within a day", () => {
  it("keeps signing with every secret still in its 24 hours, not only the last one replaced", async () => {
    const p = await product();
    const first = await expectOk(p.rotate());
    const second = await expectOk(p.rotate());
    const bought = await call("POST", "/v1/subscriptions/", {
      token: p.t.partnerKey,
      body: { objects: [{ customer: p.t.customers[0], resource: p.product, amount: 1, period: "1 month" }] },
    });
    expect(bought.status, bought.text).toBe(202);
    const request = await eventually(async () => received.get(p.host), "a delivery");
    expect(request.headers["webhook-signature"]?.split(" ")).toHaveLength(3);
    for (const secret of [p.secret, first.signing_secret, second.signing_secret]) {
      expect(new Webhook(secret).verify(request.body, request.headers)).toMatchObject({ type: "CREATED" });
    }
  });

  it(`refuses a rotation while ${MAX_GRACE_SECRETS} replaced secrets still sign (409), changing nothing`, async () => {
    const p = await product();
    for (let i = 0; i < MAX_GRACE_SECRETS; i++) await expectOk(p.rotate());
    const before = await env.DB.prepare("SELECT signing_secret, older_secrets FROM products WHERE id = ?")
      .bind(p.product)
      .first();
    const refused = await p.rotate();
    expect(refused.status, refused.text).toBe(409);
    expect(refused.body.detail).toMatch(/the oldest stops at \d{4}-/);
    expect(
      await env.DB.prepare("SELECT signing_secret, older_secrets FROM products WHERE id = ?")
        .bind(p.product)
        .first(),
    ).toEqual(before);
  });
});
