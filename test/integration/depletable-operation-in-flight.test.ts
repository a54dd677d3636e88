import { describe, expect, it } from "vitest";
import { purchaseOperationDiedAt } from "../books";
import { call, expectOk, type Tenant, tenantWithCatalog } from "../helpers";

/**
 * A depletable bought by an operation (`Prefer: respond-async`) whose run died once its
 * subscription and completed order were written, before its commission was accepted: until the
 * operation runs again (or is given up, which undoes it), its purchase has not taken effect, and
 * consumption reports pass it over ("left to its operation"). Its reads must say so too: the
 * younger one the reports drain is the one `active`, as the README's "Consumption" states.
 */

const read = (t: Tenant, id: string) =>
  expectOk(call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey }));

const listed = async (t: Tenant, status: string) =>
  (
    await expectOk(call("GET", `/v1/subscriptions/?status=${status}&resource=tx`, { token: t.partnerKey }))
  ).objects.map((o: { id: string }) => o.id) as string[];

describe("a depletable whose purchase operation died after its order was written completed", () => {
  it("reads as consumption treats it: passed over, it is inactive, and the younger one it drains is active", async () => {
    const t = await tenantWithCatalog(1, 100);
    const customer = t.customers[0] as string;
    const { ids } = await purchaseOperationDiedAt(t, "purchase.created", [{ resource: "tx", amount: 10 }]);
    const first = ids.subscriptions[0] as string;

    const second = (
      await expectOk(
        call("POST", "/v1/subscriptions/", {
          token: t.partnerKey,
          body: { objects: [{ customer, resource: "tx", amount: 10 }] },
        }),
        201,
      )
    ).objects[0].id as string;

    const r = await expectOk(
      call("POST", `/v1/customers/${customer}/consumption`, {
        token: t.partnerKey,
        body: { resource: "tx", amount: 4 },
      }),
    );
    // Consumption passes over the first (its operation decides it) and drains the second.
    expect(r.objects.map((o: { id: string }) => o.id)).toEqual([second]);
    expect(await read(t, first)).toMatchObject({ remaining: 10, status: "inactive" });
    expect(await read(t, second)).toMatchObject({ remaining: 6, status: "active" });
    expect(await listed(t, "active")).toEqual([second]);
    expect(await listed(t, "inactive")).toEqual([first]);
  });
});
