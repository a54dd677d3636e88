import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { MAX_ATTEMPTS } from "../../src/app/operations";
import worker from "../../src/index";

/**
 * Operations messages that no run can ever read (a carry naming no term, a body of no known
 * variant, not an object at all). A carry without a `from` failed every attempt and, out of them,
 * was sent again 5 minutes later, a new message whose attempts started over: without end. A body
 * that is not an object threw out of the consumer and failed its whole batch.
 */
describe("an operations message no run can read", () => {
  const sent: unknown[] = [];
  const queueEnv = {
    ...env,
    OPERATIONS: {
      send: async (body: unknown) => void sent.push(body),
      sendBatch: async (bodies: Iterable<{ body: unknown }>) => {
        for (const b of bodies) sent.push(b.body);
      },
    },
  } as unknown as Env;
  const deliver = async (bodies: unknown[], attempts: number) => {
    sent.length = 0;
    const batch = createMessageBatch<unknown>(
      "stratus-operations",
      bodies.map((body) => ({ id: crypto.randomUUID(), timestamp: new Date(), attempts, body })),
    );
    await worker.queue(batch as MessageBatch, queueEnv);
    return getQueueResult(batch, createExecutionContext());
  };

  it("is acked at once, never sent again (was: a carry without `from` resent for good)", async () => {
    for (const body of [
      { carry: { status: "UNDEPLOYED" } },
      { carry: { from: 7, status: "UNDEPLOYED" } },
      { carry: { from: "0190aaaa-0000-7000-8000-00000000abcd", status: "GONE" } },
      { somethingElse: 1 },
    ]) {
      for (const attempts of [1, MAX_ATTEMPTS]) {
        const result = await deliver([body], attempts);
        expect({ body, attempts, acks: result.explicitAcks.length, retries: result.retryMessages }).toEqual({
          body,
          attempts,
          acks: 1,
          retries: [],
        });
        expect(sent).toEqual([]);
      }
    }
  });

  it("that is not an object is acked, and its batch goes on (was: the batch failed)", async () => {
    const result = await deliver([null, "text", { opRef: "op_unknown" }], 1);
    expect(result.explicitAcks).toHaveLength(3);
    expect(result.retryMessages).toEqual([]);
  });
});
