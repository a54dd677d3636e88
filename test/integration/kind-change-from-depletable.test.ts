import { describe, expect, it } from "vitest";
import { expectBooksBalance } from "../books";
import { call, expectOk, ownProduct, tenantWithCatalog } from "../helpers";

/**
 * A depletable product the operator makes another kind (sold per hour from now on) while a
 * customer still holds traffic bought of it: each subscription keeps the kind it was bought as
 * (kind-change-depletable.test.ts, the other way round), so the depletable bought before is still
 * drained by the customer's consumption reports, and ends when used up. Refused, the prepaid
 * traffic could never be drawn: the depletable stayed active for ever, holding its quota.
 */
describe("a depletable product made timed while a depletable of it is live", () => {
  it("the depletable bought before is still drained, and expires used up", async () => {
    const t = await tenantWithCatalog(1, 100);
    const { product, put } = await ownProduct(t, {
      prefix: "traffic",
      kind: "depletable",
      unitPrice: "0.05",
    });
    const customer = t.customers[0] as string;
    const bought = (
      await expectOk(
        call("POST", "/v1/subscriptions/", {
          token: t.partnerKey,
          body: { objects: [{ customer, resource: product, amount: 10 }] },
        }),
        201,
      )
    ).objects[0];

    await put({ kind: "timed" }); // the operator sells it per hour from now on

    const report = (amount: number) =>
      call("POST", `/v1/customers/${customer}/consumption`, {
        token: t.partnerKey,
        body: { resource: product, amount },
      });
    const first = await report(4);
    expect(first.status, first.text).toBe(200);
    expect(first.body.objects.map((o: { id: string; remaining: number }) => [o.id, o.remaining])).toEqual([
      [bought.id, 6],
    ]);
    expect(first.body.meta.unallocated).toBe(0);
    const second = await report(9);
    expect(second.status, second.text).toBe(200);
    expect(second.body.meta.unallocated).toBe(3);
    const after = await expectOk(call("GET", `/v1/subscriptions/${bought.id}/`, { token: t.partnerKey }));
    expect(after).toMatchObject({ status: "expired", remaining: 0 });
    await expectBooksBalance(t);
  });

  it("a product of another kind of which the customer holds no depletable is still refused, 400", async () => {
    const t = await tenantWithCatalog(1, 100);
    const { product } = await ownProduct(t, { prefix: "disk" });
    const refused = await call("POST", `/v1/customers/${t.customers[0]}/consumption`, {
      token: t.partnerKey,
      body: { resource: product, amount: 1 },
    });
    expect(refused.status, refused.text).toBe(400);
    expect(refused.body.errors[0].point).toBe("/resource");
  });
});
