import { describe, expect, it } from "vitest";
import { expectBooksBalance } from "../books";
import { call, expectOk, ownProduct, tenantWithCatalog } from "../helpers";

/**
 * A product whose kind the operator changes while subscriptions of it are live: each subscription
 * keeps the kind it was bought as. A depletable is "inactive" only "because there is another
 * depletable resource (traffic) subscription being used" (subscriptions-api.md): a live
 * subscription of the same product bought before, as another kind, is no depletable in use.
 */
describe("a timed product made depletable while a timed subscription of it is live", () => {
  it("the depletable bought since is active, and drained, not queued behind the timed one", async () => {
    const t = await tenantWithCatalog(1, 100);
    const { product, put: putProduct } = await ownProduct(t, {
      prefix: "traffic",
      unitPrice: "0.05",
      limit: 1000,
    });
    const put = (kind: string) => putProduct({ kind });
    const buy = (object: Record<string, unknown>) =>
      expectOk(
        call("POST", "/v1/subscriptions/", {
          token: t.partnerKey,
          body: { objects: [{ customer: t.customers[0], resource: product, ...object }] },
        }),
        201,
      ).then((b) => b.objects[0]);
    const timed = await buy({ amount: 5, period: "1 month" });
    expect(timed.status).toBe("active");
    await put("depletable");
    const depletable = await buy({ amount: 100 });
    const drained = await expectOk(
      call("POST", `/v1/customers/${t.customers[0]}/consumption`, {
        token: t.partnerKey,
        body: { resource: product, amount: 10 },
      }),
    );
    expect(drained.objects.map((o: { id: string; remaining: number }) => [o.id, o.remaining])).toEqual([
      [depletable.id, 90],
    ]);
    const read = await expectOk(call("GET", `/v1/subscriptions/${depletable.id}/`, { token: t.partnerKey }));
    const active = await expectOk(
      call("GET", `/v1/subscriptions/?status=active&resource=${product}`, { token: t.partnerKey }),
    );
    expect({
      bought: depletable.status,
      read: read.status,
      listedActive: active.objects.map((o: { id: string }) => o.id).sort(),
    }).toEqual({ bought: "active", read: "active", listedActive: [timed.id, depletable.id].sort() });
    await expectBooksBalance(t);
  });
});
