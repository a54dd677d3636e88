import { afterEach, describe, expect, it } from "vitest";
import { armFault, disarmFaults } from "../../src/domain/faults";
import { expectBooksBalance } from "../books";
import {
  call,
  eventually,
  expectOk,
  syndicatedProduct,
  tenant,
  unique,
  usageOf,
  vendorEndpoints,
  vendorTokenOf,
  withCatalog,
} from "../helpers";

vendorEndpoints();
afterEach(() => disarmFaults());

/**
 * A product changed (its kind, here) while a purchase of it waits for its vendor: the purchase is
 * finished as it was bought when its vendor reports, not bought again as the catalog now reads.
 */
describe("a product changed while a purchase of it waits for its vendor", () => {
  it("a kind change (license to per_object) buys nothing more when the vendor deploys", async () => {
    const t = await tenant({ customers: 1 });
    await withCatalog(t);
    const { product, vendorId } = await syndicatedProduct(t, `${crypto.randomUUID()}.example`);
    const vendorToken = await vendorTokenOf(t, vendorId);
    const bought = await call("POST", "/v1/subscriptions/", {
      token: t.partnerKey,
      body: { objects: [{ customer: t.customers[0], resource: product, amount: 2, period: "1 month" }] },
    });
    expect(bought.status).toBe(202);
    const location = bought.headers.get("location") as string;
    const [sub] = await eventually(async () => {
      const list = await expectOk(call("GET", "/v1/subscriptions/?status=all", { token: t.partnerKey }));
      return list.objects.length > 0 ? (list.objects as Array<{ id: string }>) : undefined;
    }, "the subscription waiting for its vendor");
    // The operator makes the product one object per subscription, as an ip is.
    const endpoint = `https://${crypto.randomUUID()}.example/hooks`;
    await expectOk(
      call("PUT", `/v1/products/${product}`, {
        token: t.operator,
        body: {
          name: "CRM seats",
          kind: "per_object",
          unit: "seat",
          unit_price: "0.10",
          currency: "EUR",
          quota_resource: `stratus.${product}`,
          delivery: "syndicated",
          vendor: vendorId,
          endpoint,
        },
      }),
    );
    await expectOk(
      call("PATCH", `/api/subscription/${sub?.id}`, {
        token: vendorToken,
        body: { deploymentStatus: "DEPLOYED" },
      }),
    );
    const all = await expectOk(call("GET", "/v1/subscriptions/?status=all", { token: t.partnerKey }));
    expect(all.objects.map((o: { id: string; amount: number }) => [o.id, o.amount])).toEqual([[sub?.id, 2]]);
    const done = await call("GET", location, { token: t.partnerKey });
    expect(done.status, done.text).toBe(201);
    expect(done.body.objects.map((o: { id: string }) => o.id)).toEqual([sub?.id]);
    expect(await usageOf(t, 0, product)).toMatchObject({ usage: 2, pending: 0 });
    await expectBooksBalance(t);
  });
});

describe("a product changed before a keyed purchase of it is resumed", () => {
  it("a quota resource change: the retry holds and records the resource its first attempt held", async () => {
    const t = await tenant({ customers: 1 });
    await withCatalog(t);
    const product = unique("disk");
    const [before, after] = [`stratus.${product}`, `stratus.${product}-2`];
    const put = (resource: string) =>
      expectOk(
        call("PUT", `/v1/products/${product}`, {
          token: t.operator,
          body: {
            name: product,
            kind: "timed",
            unit: "GB",
            unit_price: "0.10",
            currency: "EUR",
            quota_resource: resource,
          },
        }),
      );
    for (const resource of [before, after]) {
      await expectOk(
        call("PUT", `/v1/resources/${resource}`, { token: t.operator, body: { service: "stratus" } }),
      );
      await expectOk(
        call("PUT", `/v1/customers/${t.customers[0]}/quotas`, {
          token: t.operator,
          body: { resource, limit: 10 },
        }),
      );
    }
    await put(before);
    const key = unique("key");
    const purchase = () =>
      call("POST", "/v1/subscriptions/", {
        token: t.partnerKey,
        headers: { "idempotency-key": key },
        body: { objects: [{ customer: t.customers[0], resource: product, amount: 3, period: "1 month" }] },
      });
    // The first attempt holds 3 on the product's resource, then dies.
    armFault("purchase.issued");
    expect((await purchase()).status).toBe(500);
    await put(after);
    const retry = await purchase();
    expect(retry.status, retry.text).toBe(201);
    const quotas = await expectOk(call("GET", "/account/v1.0/quotas", { token: t.userTokens[0] }));
    expect(quotas.system[before]).toMatchObject({ usage: 3, pending: 0 });
    expect(quotas.system[after]).toMatchObject({ usage: 0, pending: 0 });
    await expectBooksBalance(t);
    // Cancelled, it gives back what it held, where it held it.
    await expectOk(call("DELETE", `/v1/subscriptions/${retry.body.objects[0].id}/`, { token: t.partnerKey }));
    const released = await expectOk(call("GET", "/account/v1.0/quotas", { token: t.userTokens[0] }));
    expect(released.system[before]).toMatchObject({ usage: 0, pending: 0 });
    await expectBooksBalance(t);
  });
});
