import { describe, expect, it } from "vitest";
import {
  call,
  eventually,
  expectOk,
  syndicatedProduct,
  tenantWithCatalog,
  vendorEndpoints,
  vendorTokenOf,
} from "../helpers";

/**
 * The vendor API reads a subscription's status as `/v1` does: a depletable waiting behind an
 * older one of its customer and product is inactive there too (subscriptions-api.md, "Statuses").
 */

vendorEndpoints();

describe("GET /api/subscription/{id} of a depletable", () => {
  it("answers INACTIVE while an older one of the product is used, as /v1 answers inactive", async () => {
    const t = await tenantWithCatalog(1);
    const customer = t.customers[0] as string;
    const { product, vendorId } = await syndicatedProduct(t, undefined, {
      kind: "depletable",
      unit: "GB",
      limit: 100,
    });
    const token = await vendorTokenOf(t, vendorId);
    const bought: string[] = [];
    for (let i = 0; i < 2; i++) {
      const r = await call("POST", "/v1/subscriptions/", {
        token: t.partnerKey,
        body: { objects: [{ customer, resource: product, amount: 10 }] },
      });
      expect(r.status, r.text).toBe(202);
      const id = await eventually(async () => {
        const list = await expectOk(
          call("GET", `/v1/subscriptions/?resource=${product}`, { token: t.partnerKey }),
        );
        return list.objects.length === i + 1 ? (list.objects[i].id as string) : undefined;
      }, "the purchase's subscription");
      await expectOk(
        call("PATCH", `/api/subscription/${id}`, { token, body: { deploymentStatus: "DEPLOYED" } }),
      );
      bought.push(id);
    }
    const [older, younger] = bought as [string, string];
    const v1 = (id: string) => expectOk(call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey }));
    const api = (id: string) => expectOk(call("GET", `/api/subscription/${id}`, { token }));
    expect((await v1(older)).status).toBe("active");
    expect((await v1(younger)).status).toBe("inactive");
    expect((await api(older)).status).toBe("ACTIVE");
    expect((await api(younger)).status).toBe("INACTIVE");
  });
});
