import { describe, expect, it } from "vitest";
import { openApiDocument } from "../../src/http/openapi";
import { routes } from "../../src/http/routes";
import { call, expectOk, tenantWithCatalog } from "../helpers";

/**
 * What the document shows a cancel answering is what a cancel answers. spec/subscriptions-api.md
 * has three statuses, and a subscription that ended is `expired` (README: "expired after its end,
 * once cancelled or depleted"); the document's example showed a cancelled one `inactive`, the
 * status of one still to come, which a client written from it would wait on.
 */
describe("DELETE /v1/subscriptions/{id}: the documented answer", () => {
  it("shows the status a cancelled subscription has", async () => {
    const doc = openApiDocument(routes, "http://stratus.test") as any;
    const example =
      doc.paths["/v1/subscriptions/{id}"].delete.responses["200"].content["application/json"].example;
    const t = await tenantWithCatalog(1, 100);
    const bought = await expectOk(
      call("POST", "/v1/subscriptions/", {
        token: t.partnerKey,
        body: { objects: [{ customer: t.customers[0], resource: "dssd", amount: 100, period: "1 month" }] },
      }),
      201,
    );
    const cancelled = await expectOk(
      call("DELETE", `/v1/subscriptions/${bought.objects[0].id}/`, { token: t.partnerKey }),
    );
    expect(cancelled.end_reason).toBe(example.end_reason);
    expect(example.status).toBe(cancelled.status);
  });
});
