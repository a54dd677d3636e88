import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { abandonOverduePurchases, VENDOR_DEADLINE_MS } from "../../src/app/operations";
import { armFault, disarmFaults } from "../../src/domain/faults";
import { expectBooksBalance, recoverAll } from "../books";
import {
  call,
  eventually,
  expectOk,
  syndicatedProduct,
  tenantWithCatalog,
  usageOf,
  vendorEndpoints,
  vendorTokenOf,
} from "../helpers";

vendorEndpoints();
afterEach(() => disarmFaults());

/**
 * A syndicated purchase whose vendor reports DEPLOYED just before the 7-day deadline, the run that
 * report began dying before the decision (so the operation is `running`, no longer `waiting`, left
 * to the stalled-operation sweep). The cron's next run, a minute later, is past the deadline: its
 * overdue-purchase step must not undo a purchase whose vendor did report in time.
 */
describe("a vendor that reported DEPLOYED before the deadline", () => {
  it("is not undone by the deadline sweep as 'the vendor did not provision within 7 days'", async () => {
    const t = await tenantWithCatalog(1, 100);
    const { product, vendorId } = await syndicatedProduct(t);
    const customer = t.customers[0] as string;
    const r = await call("POST", "/v1/subscriptions/", {
      token: t.partnerKey,
      body: { objects: [{ customer, resource: product, amount: 3, period: "1 week" }] },
    });
    expect(r.status).toBe(202);
    const location = r.headers.get("location") as string;
    const opRef = location.split("/").at(-1) as string;
    const syn = await eventually(async () => {
      const list = await expectOk(call("GET", "/v1/subscriptions/?status=all", { token: t.partnerKey }));
      return list.objects[0];
    }, "the subscription");
    await eventually(async () => {
      const op = await env.DB.prepare("SELECT waiting FROM operations WHERE op_ref = ?")
        .bind(opRef)
        .first<{ waiting: number }>();
      return op?.waiting ? true : undefined;
    }, "waiting");
    // Accepted 7 days ago less two minutes: the vendor reports just in time.
    const accepted = new Date(Date.now() - VENDOR_DEADLINE_MS + 120_000).toISOString();
    await env.DB.prepare("UPDATE operations SET created_at = ? WHERE op_ref = ?").bind(accepted, opRef).run();

    // The vendor reports DEPLOYED; the run it began dies before the decision (as does any run
    // until the cron below, e.g. the ledger briefly unreachable).
    armFault("operation.started", 50);
    const vendorToken = await vendorTokenOf(t, vendorId);
    const report = await call("PATCH", `/api/subscription/${syn.id}`, {
      token: vendorToken,
      body: { deploymentStatus: "DEPLOYED" },
    });
    expect(report.status).toBe(200);

    // The cron, three minutes later: past the deadline.
    await abandonOverduePurchases(env, new Date(Date.now() + 180_000));
    disarmFaults();
    await recoverAll(t);

    const final = await call("GET", location, { token: t.partnerKey });
    const sub = await expectOk(call("GET", `/v1/subscriptions/${syn.id}`, { token: t.partnerKey }));
    expect({ status: final.status, detail: final.body?.detail, ended_at: sub.ended_at }).toEqual({
      status: 201,
      detail: undefined,
      ended_at: null,
    });
    expect(await usageOf(t, 0, product)).toMatchObject({ usage: 3, pending: 0 });
    await expectBooksBalance(t);
  });
});
