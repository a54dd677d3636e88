import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import worker from "../../src/index";
import { logLines, spyConsole } from "../helpers";

/**
 * Renewals and webhooks messages that no run can ever read: not an object, or without the fields
 * their consumer needs. One that was not an object threw out of the consumer (TypeError on `in`,
 * or reading `deliveryId` of null, again in its `catch`) and failed its whole batch, its good
 * batch-mates retried with it until `max_retries`; one without its fields was retried on its own
 * as long. Each is now acked with one line naming it, and its batch-mates are done as usual.
 */
spyConsole();

const deliver = async (queue: string, bodies: unknown[]) => {
  const batch = createMessageBatch<unknown>(
    queue,
    bodies.map((body, i) => ({ id: `m${i}`, timestamp: new Date(), attempts: 1, body })),
  );
  let threw: unknown = null;
  await worker.queue(batch as MessageBatch, env).catch((error: unknown) => {
    threw = error;
  });
  const result = await getQueueResult(batch, createExecutionContext());
  return {
    threw,
    acks: [...result.explicitAcks].sort(),
    retries: result.retryMessages,
    all: result.retryBatch,
  };
};

const done = (ids: string[]) => ({
  threw: null,
  acks: ids,
  retries: [],
  all: { retry: false },
});

describe("a renewals message no run can read", () => {
  const good = { subscription: "00000000-0000-7000-8000-00000000dead", at: new Date().toISOString() };

  it.each([
    ["null", null],
    ["text", "renew me"],
    ["no subscription", { at: new Date().toISOString() }],
    ["a number for its subscription", { subscription: 7, at: new Date().toISOString() }],
    ["no time", { subscription: good.subscription }],
    ["a time that is none", { subscription: good.subscription, at: "yesterday" }],
    ["a month close with no boundary", { subscription: good.subscription, closeMonth: 3 }],
    ["a fan-out of no known kind", { fanOut: { kind: "everything" } }],
    ["a fan-out with no cursor", { fanOut: { kind: "renewals", before: good.at, at: good.at } }],
  ])("(%s) is acked with its line, its good batch-mate renewed", async (_name, bad) => {
    const outcome = await deliver("stratus-renewals", [good, bad]);
    expect(outcome).toEqual(done(["m0", "m1"]));
    expect(logLines("error", "renewal.unreadable")).toEqual([
      expect.objectContaining({ body: bad, attempts: 1 }),
    ]);
    expect(logLines("log", "queue")).toEqual([
      expect.objectContaining({ queue: "stratus-renewals", acked: 2, retried: 0, skipped: 1 }),
    ]);
  });
});

describe("a webhooks message no run can read", () => {
  const good = { deliveryId: crypto.randomUUID() };

  it.each([
    ["null", null],
    ["text", "deliver me"],
    ["no delivery", { due: null }],
    ["a number for its delivery", { deliveryId: 7 }],
    ["a number for its due time", { deliveryId: good.deliveryId, due: 7 }],
  ])("(%s) is acked with its line, its good batch-mate attempted", async (_name, bad) => {
    const outcome = await deliver("stratus-webhooks", [good, bad]);
    expect(outcome).toEqual(done(["m0", "m1"]));
    expect(logLines("error", "webhook.unreadable")).toEqual([
      expect.objectContaining({ body: bad, attempts: 1 }),
    ]);
  });
});
