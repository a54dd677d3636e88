import { afterEach, describe, expect, it } from "vitest";
import { reportDeployment } from "../../src/app/deployment";
import { disarmFaults } from "../../src/domain/faults";
import { expectBooksBalance } from "../books";
import {
  deployedChain,
  deploymentBecomes,
  deploymentOf,
  expectNotRenewedAtEnd,
  expectOk,
  shardsHeld,
  vendorEndpoints,
} from "../helpers";

vendorEndpoints();
afterEach(() => disarmFaults());

/**
 * A vendor's DEPLOYED on a chain's first term lifts the UNDEPLOYED it carried to the later terms;
 * while that walk is on its way, the vendor undeploys the second term itself. Its UNDEPLOYED is
 * the chain's from there: the third term, after it, must not be left DEPLOYED by the older walk
 * from the first term passing it after, or the cron renews it, charged, for an application its
 * vendor undeployed.
 */
describe("a vendor's DEPLOYED on a chain crossing its UNDEPLOYED on a later term", () => {
  it("leaves the terms after the undeployed one UNDEPLOYED and renews none", async () => {
    const { t, id, second, last, report: patch } = await deployedChain();
    const report = (on: string, status: string) => expectOk(patch(on, status));

    // The vendor undeploys the chain's application: the later terms are undeployed with it.
    await report(id, "UNDEPLOYED");
    await deploymentBecomes(second, "UNDEPLOYED");
    await deploymentBecomes(last, "UNDEPLOYED");

    // It deploys it again: that request's walk lifts the second term and is held before the last.
    const held = shardsHeld("setDeployment", { nth: 3 });
    const lifting = reportDeployment(held.env, id, { deploymentStatus: "DEPLOYED" });
    await held.reached;
    await deploymentBecomes(second, "DEPLOYED");

    // Then it undeploys the second term itself; the queue's carries run meanwhile.
    await report(second, "UNDEPLOYED");
    await deploymentBecomes(last, "UNDEPLOYED");
    await new Promise((resolve) => setTimeout(resolve, 3_000));

    // The older walk goes on.
    held.release();
    await lifting;
    await new Promise((resolve) => setTimeout(resolve, 3_000));

    expect(await deploymentOf(second), "the term its vendor undeployed").toBe("UNDEPLOYED");
    expect(await deploymentOf(last), "the term after it").toBe("UNDEPLOYED");
    await expectNotRenewedAtEnd(t, last);
    await expectBooksBalance(t);
  }, 60_000);
});
