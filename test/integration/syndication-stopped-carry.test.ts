import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { renewOrExpire } from "../../src/app/renewals";
import { armFault, disarmFaults } from "../../src/domain/faults";
import { subscriptionObject } from "../../src/objects/subscription-object";
import { expectBooksBalance, recoverAll } from "../books";
import { call, deployedTerm, deploymentBecomes, deploymentOf, expectOk, vendorEndpoints } from "../helpers";

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
    const { t, id, report: patch } = await deployedTerm("1 week", true);
    const report = (status: string) => patch(id, status);
    const ext = await call("POST", `/v1/subscriptions/${id}/action/?do=extend`, { token: t.partnerKey });
    expect(ext.status, ext.text).toBe(200);
    const later = ext.body.id as string;

    await expectOk(report("UNDEPLOYED"));
    await deploymentBecomes(later, "UNDEPLOYED");

    // It deploys the application again; the request dies once the reported term committed.
    armFault("subscription.committed");
    expect((await report("DEPLOYED")).status).toBe(500);
    expect(await deploymentOf(id)).toBe("DEPLOYED");
    // Then it stops it (still deployed).
    await expectOk(report("STOPPED"));
    await recoverAll(t);
    await deploymentBecomes(later, "DEPLOYED", 50);

    const end = Date.parse((await subscriptionObject(env, later).get())?.endTime as string);
    expect(await renewOrExpire(env, later, new Date(end - 60_000))).toBe("renewed");
    await expectBooksBalance(t);
  }, 60_000);
});
