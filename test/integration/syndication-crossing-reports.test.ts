import { afterEach, describe, expect, it } from "vitest";
import { reportDeployment } from "../../src/app/deployment";
import { disarmFaults } from "../../src/domain/faults";
import { expectBooksBalance } from "../books";
import {
  deployedChain,
  deploymentOf,
  eventually,
  expectNotRenewedAtEnd,
  expectOk,
  shardsHeld,
  vendorEndpoints,
} from "../helpers";

vendorEndpoints();
afterEach(() => disarmFaults());

/**
 * A vendor's DEPLOYED (lifting its own UNDEPLOYED) and its UNDEPLOYED right after cross: the
 * DEPLOYED's walk along the chain is slow (its request's object calls), the UNDEPLOYED's overtakes
 * it, and the queue's carries (sent by both reports' pushes) run in between. The vendor's latest
 * word on the chain is UNDEPLOYED; no later term may be left DEPLOYED by the slower, older walk,
 * or the cron renews it, charged, for an application its vendor undeployed.
 */
describe("a vendor's DEPLOYED and UNDEPLOYED crossing on a chain", () => {
  it("leaves every later term UNDEPLOYED and renews none (was: the older walk lifted the last term after the newer one passed)", async () => {
    const { t, id, second, last, report: patch } = await deployedChain();
    const report = (status: string) => expectOk(patch(id, status));
    const settledAs = (expected: string) =>
      eventually(async () => {
        for (const on of [second, last]) if ((await deploymentOf(on)) !== expected) return undefined;
        return true;
      }, `the later terms ${expected}`);

    // The vendor undeploys the chain's application: the later terms are undeployed with it.
    await report("UNDEPLOYED");
    await settledAs("UNDEPLOYED");

    // It deploys it again: that request's walk lifts the second term and is held before the last.
    const held = shardsHeld("setDeployment", { nth: 3 });
    const lifting = reportDeployment(held.env, id, { deploymentStatus: "DEPLOYED" });
    await held.reached;
    expect(await deploymentOf(id)).toBe("DEPLOYED");

    // Then it undeploys it again, its last word on the chain; the queue's carries run meanwhile.
    await report("UNDEPLOYED");
    await settledAs("UNDEPLOYED");
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    await settledAs("UNDEPLOYED");

    // The older walk goes on.
    held.release();
    await lifting;
    await new Promise((resolve) => setTimeout(resolve, 3_000));

    expect(await deploymentOf(id), "the reported term").toBe("UNDEPLOYED");
    expect(await deploymentOf(last), "the chain's last term").toBe("UNDEPLOYED");
    await expectNotRenewedAtEnd(t, last);
    await expectBooksBalance(t);
  }, 60_000);
});
