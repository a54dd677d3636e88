import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { renewOrExpire } from "../../src/app/renewals";
import { armFault, disarmFaults } from "../../src/domain/faults";
import { subscriptionObject } from "../../src/objects/subscription-object";
import { expectBooksBalance, recoverAll } from "../books";
import {
  call,
  eventually,
  expectOk,
  syndicatedProduct,
  tenantWithCatalog,
  vendorEndpoints,
  vendorTokenOf,
} from "../helpers";

vendorEndpoints();
afterEach(() => disarmFaults());

/**
 * The vendor's DEPLOYED lifting its own UNDEPLOYED has the later terms of the chain lifted by the
 * operations queue should its request die after the commit (the push of its event sends the carry).
 * That carry takes the status the reported term has when it runs: a vendor that has STOPPED the
 * application since (DEPLOYED → STOPPED, still deployed) had nothing lifted, and the chain's last
 * term, left UNDEPLOYED with the chain, was refused its renewal and expired.
 */
describe("a vendor's DEPLOYED whose request died, followed by STOPPED", () => {
  it("still lifts the later terms, which renew (was: left UNDEPLOYED, the renewal refused)", async () => {
    const t = await tenantWithCatalog(1, 100);
    const { product, vendorId } = await syndicatedProduct(t);
    const customer = t.customers[0] as string;
    const r = await call("POST", "/v1/subscriptions/", {
      token: t.partnerKey,
      body: { objects: [{ customer, resource: product, amount: 1, period: "1 week", auto_renew: true }] },
    });
    expect(r.status, r.text).toBe(202);
    const id = (
      await eventually(async () => {
        const list = await expectOk(call("GET", "/v1/subscriptions/?status=all", { token: t.partnerKey }));
        return list.objects[0];
      }, "the subscription")
    ).id as string;
    const vendorToken = await vendorTokenOf(t, vendorId);
    const report = (status: string) =>
      call("PATCH", `/api/subscription/${id}`, { token: vendorToken, body: { deploymentStatus: status } });
    await expectOk(report("DEPLOYED"));
    await eventually(async () => {
      const op = await call("GET", r.headers.get("location") as string, { token: t.partnerKey });
      return op.status === 201 ? true : undefined;
    }, "the purchase to complete");
    const ext = await call("POST", `/v1/subscriptions/${id}/action/?do=extend`, { token: t.partnerKey });
    expect(ext.status, ext.text).toBe(200);
    const later = ext.body.id as string;
    const status = async (on: string) => (await subscriptionObject(env, on).get())?.deploymentStatus;

    await expectOk(report("UNDEPLOYED"));
    await eventually(async () => ((await status(later)) === "UNDEPLOYED" ? true : undefined), "undeployed");

    // It deploys the application again; the request dies once the reported term committed.
    armFault("subscription.committed");
    expect((await report("DEPLOYED")).status).toBe(500);
    expect(await status(id)).toBe("DEPLOYED");
    // Then it stops it (still deployed).
    await expectOk(report("STOPPED"));
    await recoverAll(t);
    await eventually(async () => ((await status(later)) === "DEPLOYED" ? true : undefined), "lifted", 50);

    const end = Date.parse((await subscriptionObject(env, later).get())?.endTime as string);
    expect(await renewOrExpire(env, later, new Date(end - 60_000))).toBe("renewed");
    await expectBooksBalance(t);
  }, 60_000);
});
