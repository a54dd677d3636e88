import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { MAX_ATTEMPTS } from "../../src/app/operations";
import { armFault, disarmFaults } from "../../src/domain/faults";
import worker from "../../src/index";
import type { OperationMessage } from "../../src/objects/operations-queue";
import { subscriptionObject } from "../../src/objects/subscription-object";
import { expectBooksBalance } from "../books";
import { call, deployedChain, expectNotRenewedAtEnd, expectOk, vendorEndpoints } from "../helpers";

vendorEndpoints();
afterEach(() => disarmFaults());

/**
 * A vendor's UNDEPLOYED carried along its chain by the operations queue, whose message runs out of
 * attempts before its walk reaches every later term. It was dropped: the push of the report's event
 * had landed, so nothing sent it again, and the terms it had not reached stayed DEPLOYED, the last
 * one renewed, and charged, for an application its vendor had undeployed.
 */
describe("a carry of a vendor's UNDEPLOYED out of attempts", () => {
  it("is sent again, and its terms are undeployed: the chain's last is not renewed (was: dropped, renewed)", async () => {
    const { t, id, second: middle, last } = await deployedChain();
    const read = async (on: string) =>
      (await expectOk(call("GET", `/v1/subscriptions/${on}/`, { token: t.partnerKey }))).deployment_status;
    // The vendor's UNDEPLOYED on the first term, committed; its push (which sends the carry) not yet.
    armFault("subscription.committed");
    await subscriptionObject(env, id)
      .setDeployment({ deploymentStatus: "UNDEPLOYED" })
      .catch(() => undefined);
    expect(await read(id)).toBe("UNDEPLOYED");
    expect([await read(middle), await read(last)]).toEqual(["DEPLOYED", "DEPLOYED"]);

    // The carry's last attempt dies on its first term, after that term's commit.
    const sent: OperationMessage[] = [];
    const queueEnv = {
      ...env,
      OPERATIONS: {
        send: async (body: OperationMessage) => void sent.push(body),
        sendBatch: async (bodies: Iterable<{ body: OperationMessage }>) => {
          for (const b of bodies) sent.push(b.body);
        },
      },
    } as unknown as Env;
    const deliver = async (body: OperationMessage, attempts: number, on: Env) => {
      const batch = createMessageBatch<OperationMessage>("stratus-operations", [
        { id: crypto.randomUUID(), timestamp: new Date(), attempts, body },
      ]);
      await worker.queue(batch, on);
      return getQueueResult(batch, createExecutionContext());
    };
    armFault("subscription.committed");
    const result = await deliver({ carry: { from: id, status: "UNDEPLOYED" } }, MAX_ATTEMPTS, queueEnv);
    expect(result.explicitAcks).toHaveLength(1);
    expect(await read(last)).toBe("DEPLOYED");
    // Sent again: its next delivery carries the report on to the chain's last term.
    expect(sent).toEqual([{ carry: { from: id, status: "UNDEPLOYED" } }]);
    await deliver(sent[0] as OperationMessage, 1, env);
    expect([await read(middle), await read(last)]).toEqual(["UNDEPLOYED", "UNDEPLOYED"]);

    expect(await expectNotRenewedAtEnd(t, last)).toBe("failed");
    const charges = (await expectOk(call("GET", "/v1/charges?limit=0", { token: t.partnerKey })))
      .objects as Array<{ kind: string }>;
    expect(charges.map((c) => c.kind).sort()).toEqual(["extension", "extension", "purchase"]);
    await expectBooksBalance(t);
  });
});
