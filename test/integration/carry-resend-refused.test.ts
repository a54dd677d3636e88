import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { MAX_ATTEMPTS } from "../../src/app/operations";
import { armFault, disarmFaults } from "../../src/domain/faults";
import worker from "../../src/index";
import type { OperationMessage } from "../../src/objects/operations-queue";
import { deployedChain, vendorEndpoints } from "../helpers";

vendorEndpoints();
afterEach(() => disarmFaults());

/**
 * A vendor's report carried along its chain, out of attempts, is sent again as a new message
 * (syndication-carry-attempts.test.ts). When the queue refused that send, the error escaped the
 * consumer and failed its whole batch: the message was neither acked nor retried, so the platform
 * delivered it again at once, without a delay, until `max_retries` dropped it (no dead-letter queue),
 * its later terms left DEPLOYED, the last renewed and charged. Its batch-mates were retried with it.
 */
describe("a carry out of attempts whose send again is refused", () => {
  it("is retried later, and its batch goes on (was: the batch failed, the carry soon dropped)", async () => {
    const { id } = await deployedChain();
    const refusing = {
      ...env,
      OPERATIONS: {
        send: () => Promise.reject(new Error("the queue is down")),
        sendBatch: () => Promise.reject(new Error("the queue is down")),
      },
    } as unknown as Env;
    const carry = {
      id: "carry",
      timestamp: new Date(),
      attempts: MAX_ATTEMPTS,
      body: { carry: { from: id, status: "UNDEPLOYED" } },
    };
    const other = { id: "other", timestamp: new Date(), attempts: 1, body: { opRef: "op_unknown" } };
    const batch = createMessageBatch<OperationMessage>("stratus-operations", [
      carry as { id: string; timestamp: Date; attempts: number; body: OperationMessage },
      other,
    ]);
    // Its last attempt dies on its first term, after that term's commit.
    armFault("subscription.committed");
    await worker.queue(batch, refusing);
    const result = await getQueueResult(batch, createExecutionContext());
    expect(result.retryMessages).toEqual([{ msgId: "carry" }]);
    expect(result.explicitAcks).toEqual(["other"]);
  });
});
