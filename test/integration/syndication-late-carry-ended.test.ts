import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { armFault, disarmFaults } from "../../src/domain/faults";
import worker from "../../src/index";
import type { OperationMessage } from "../../src/objects/operations-queue";
import { subscriptionObject } from "../../src/objects/subscription-object";
import { expectBooksBalance } from "../books";
import {
  call,
  deployedChain,
  deploymentBecomes,
  deploymentOf,
  expectNotRenewedAtEnd,
  expectOk,
  vendorEndpoints,
} from "../helpers";

vendorEndpoints();
afterEach(() => disarmFaults());

async function deliver(body: OperationMessage) {
  const batch = createMessageBatch<OperationMessage>("stratus-operations", [
    { id: crypto.randomUUID(), timestamp: new Date(), attempts: 1, body },
  ]);
  await worker.queue(batch, env);
  expect((await getQueueResult(batch, createExecutionContext())).explicitAcks).toHaveLength(1);
}

/**
 * A carry of a vendor's DEPLOYED on a chain's first term is late (its deliveries failed, and out of
 * attempts it is sent again as a new message, 5 minutes later, however many times): meanwhile the
 * vendor reported UNDEPLOYED on that term, whose walk undeployed the later terms, and the partner
 * cancelled the first term (its extensions live on). The late carry, its term ended, carried the
 * status its message named, older than the vendor's last report: it lifted the later terms, and
 * the chain's last was renewed, and charged, for an application its vendor had undeployed.
 */
describe("a late carry from a term that has ended since", () => {
  it("carries the status its term ended with, not its message's older one (was: lifted, renewed)", async () => {
    const { t, id, second: middle, last, report: patch } = await deployedChain();
    const report = (on: string, status: string) => expectOk(patch(on, status));

    await report(id, "UNDEPLOYED");
    await deploymentBecomes(last, "UNDEPLOYED");
    // The vendor deploys again: this report's carry is the one that will come late.
    await report(id, "DEPLOYED");
    await deploymentBecomes(last, "DEPLOYED");
    // Then it undeploys the chain's application for good, and the partner cancels the first term.
    await report(id, "UNDEPLOYED");
    await deploymentBecomes(middle, "UNDEPLOYED");
    await deploymentBecomes(last, "UNDEPLOYED");
    const cancelled = await expectOk(call("DELETE", `/v1/subscriptions/${id}/`, { token: t.partnerKey }));
    expect(cancelled.end_reason).toBe("cancelled");
    await new Promise((resolve) => setTimeout(resolve, 2_000));

    // The DEPLOYED's carry comes now.
    await deliver({ carry: { from: id, status: "DEPLOYED" } });

    expect(await deploymentOf(middle), "the middle term").toBe("UNDEPLOYED");
    expect(await deploymentOf(last), "the chain's last term").toBe("UNDEPLOYED");
    await expectNotRenewedAtEnd(t, last);
    await expectBooksBalance(t);
  }, 60_000);

  it("still carries the status its term ended with: a report whose walk died before its term was cancelled", async () => {
    const { t, id, second: middle, last } = await deployedChain();
    // The vendor's UNDEPLOYED on the first term, committed; neither walked nor pushed.
    armFault("subscription.committed");
    await subscriptionObject(env, id)
      .setDeployment({ deploymentStatus: "UNDEPLOYED" })
      .catch(() => undefined);
    expect([await deploymentOf(middle), await deploymentOf(last)]).toEqual(["DEPLOYED", "DEPLOYED"]);
    await expectOk(call("DELETE", `/v1/subscriptions/${id}/`, { token: t.partnerKey }));
    await deliver({ carry: { from: id, status: "UNDEPLOYED" } });
    expect([await deploymentOf(middle), await deploymentOf(last)]).toEqual(["UNDEPLOYED", "UNDEPLOYED"]);
    await expectBooksBalance(t);
  }, 60_000);
});
