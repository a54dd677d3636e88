import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { v7 } from "uuid";
import { afterEach, describe, expect, it } from "vitest";
import { createOperation } from "../../src/db/operations";
import { armFault, disarmFaults } from "../../src/domain/faults";
import { isRunning } from "../../src/domain/metering";
import worker from "../../src/index";
import type { OperationMessage } from "../../src/objects/operations-queue";
import { subscriptionObject } from "../../src/objects/subscription-object";
import { expectBooksBalance, purchaseDiedAt, recoverAll } from "../books";
import { call, expectOk, type Tenant, tenantWithCatalog } from "../helpers";
import { buyFor } from "../legacy";

afterEach(() => disarmFaults());

const cloudOf = (t: Tenant) => buyFor(t, "cumulus");

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A start or stop is applied once, however often its work runs: never over a later stop or start. */
describe("a start run again", () => {
  it("by its Idempotency-Key after a later stop leaves the cloud stopped, its time billed once", async () => {
    const t = await tenantWithCatalog(1, 100);
    const id = await cloudOf(t);
    const start = () =>
      call("POST", `/v1/subscriptions/${id}/action/?do=start`, {
        token: t.partnerKey,
        headers: { "idempotency-key": "start-once" },
      });
    // The start takes effect but its answer is lost.
    armFault("request.answered");
    expect((await start()).status).toBe(500);
    const stopped = await expectOk(
      call("POST", `/v1/subscriptions/${id}/action/?do=stop`, { token: t.partnerKey }),
    );
    expect(stopped.run_state).toBe("stopped");
    await sleep(1_100);
    const retry = await start();
    expect(retry.status, retry.text).toBe(200);
    expect(retry.headers.get("idempotent-replayed")).toBe("true");
    expect(retry.body.run_state).toBe("stopped");
    const after = await subscriptionObject(env, id).get();
    expect(after?.runs).toHaveLength(1);
    expect(isRunning(after?.runs ?? [])).toBe(false);
    await expectBooksBalance(t);
  });

  it("by a redelivered operation after a later stop leaves the cloud stopped", async () => {
    const t = await tenantWithCatalog(1, 100);
    const id = await cloudOf(t);
    // The consumer performs the start, then dies before storing its result: the queue redelivers.
    armFault("operation.performed");
    const accepted = await call("POST", `/v1/subscriptions/${id}/action/?do=start`, {
      token: t.partnerKey,
      headers: { prefer: "respond-async" },
    });
    expect(accepted.status).toBe(202);
    for (let i = 0; i < 100 && !isRunning((await subscriptionObject(env, id).get())?.runs ?? []); i++)
      await sleep(50);
    expect(isRunning((await subscriptionObject(env, id).get())?.runs ?? [])).toBe(true);
    await expectOk(call("POST", `/v1/subscriptions/${id}/action/?do=stop`, { token: t.partnerKey }));
    let op = await call("GET", accepted.headers.get("location") as string, { token: t.partnerKey });
    for (let i = 0; i < 150 && op.status === 202; i++) {
      await sleep(100);
      op = await call("GET", accepted.headers.get("location") as string, { token: t.partnerKey });
    }
    expect(op.status, op.text).toBe(200);
    const after = await subscriptionObject(env, id).get();
    expect(after?.runs).toHaveLength(1);
    expect(isRunning(after?.runs ?? [])).toBe(false);
    await expectBooksBalance(t);
  });
});

/** A change of cloud `id` accepted `ago` ms ago and queued since: its operation, not delivered yet. */
async function queued(
  t: Tenant,
  id: string,
  ago: number,
  change: { kind: "run"; action: "start" | "stop" } | { kind: "update"; amount: number },
) {
  const accepted = new Date(Date.now() - ago);
  const opRef = `op_${crypto.randomUUID().replaceAll("-", "")}`;
  const common = { partnerId: t.partnerId, at: accepted.toISOString(), subscription: id };
  await createOperation(env, {
    opRef,
    partnerId: t.partnerId,
    customerId: null,
    kind: change.kind,
    payload:
      change.kind === "run"
        ? { ...common, ...change, ref: v7({ msecs: accepted.getTime() }) }
        : { ...common, ...change },
    now: accepted,
  });
  return opRef;
}

const queuedRun = (t: Tenant, id: string, action: "start" | "stop", ago: number) =>
  queued(t, id, ago, { kind: "run", action });

async function deliver(opRef: string) {
  const batch = createMessageBatch<OperationMessage>("stratus-operations", [
    { id: `msg-${opRef}`, timestamp: new Date(), attempts: 1, body: { opRef } },
  ]);
  await worker.queue(batch, env);
  return getQueueResult(batch, createExecutionContext());
}

describe("a start or stop that waited in the queue", () => {
  it("is applied, and billed, from when it runs, not from when it was accepted", async () => {
    const t = await tenantWithCatalog(1, 100);
    const id = await cloudOf(t);
    const opRef = await queuedRun(t, id, "start", 10 * 60_000);
    const before = Date.now();
    expect((await deliver(opRef)).explicitAcks).toEqual([`msg-${opRef}`]);
    const runs = (await subscriptionObject(env, id).get())?.runs ?? [];
    expect(runs).toHaveLength(1);
    expect(runs[0]?.start).toBeGreaterThanOrEqual(before);
    await expectBooksBalance(t);
  });

  it("a resize of a running cloud bills the new size from when it runs", async () => {
    const t = await tenantWithCatalog(1, 100);
    const id = await cloudOf(t);
    await expectOk(call("POST", `/v1/subscriptions/${id}/action/?do=start`, { token: t.partnerKey }));
    const opRef = await queued(t, id, 10 * 60_000, { kind: "update", amount: 3 });
    const before = Date.now();
    await deliver(opRef);
    const runs = (await subscriptionObject(env, id).get())?.runs ?? [];
    expect(runs.map((r) => r.quantity)).toEqual([1, 3]);
    expect(runs[1]?.start).toBeGreaterThanOrEqual(before);
    await expectBooksBalance(t);
  });

  it("changes nothing once a start or stop accepted after it was applied: the last one accepted wins", async () => {
    const t = await tenantWithCatalog(1, 100);
    const id = await cloudOf(t);
    const opRef = await queuedRun(t, id, "start", 60_000);
    // The partner changes its mind before the start ran: a stop, answered at once.
    const stopped = await expectOk(
      call("POST", `/v1/subscriptions/${id}/action/?do=stop`, { token: t.partnerKey }),
    );
    expect(stopped.run_state).toBe("stopped");
    await deliver(opRef);
    const result = await expectOk(call("GET", `/v1/operations/${opRef}`, { token: t.partnerKey }));
    expect(result.run_state).toBe("stopped");
    expect(isRunning((await subscriptionObject(env, id).get())?.runs ?? [])).toBe(false);
    expect((await subscriptionObject(env, id).get())?.runs).toEqual([]);
    await expectBooksBalance(t);
  });
});

describe("a cloud whose purchase is undone while it runs", () => {
  it("stops at its end: nothing is billed on, and its time run is billed once", async () => {
    const t = await tenantWithCatalog(1, 100);
    const { ids, planned } = await purchaseDiedAt(t, "purchase.created", ["cumulus", "mem"]);
    const cloud = ids.subscriptions[planned.findIndex((p) => p.product.id === "cumulus")] as string;
    // Started past the request's own check (as a start that raced the undo would be).
    expect((await subscriptionObject(env, cloud).run("start", new Date())).ok).toBe(true);
    await recoverAll(t);
    const after = await subscriptionObject(env, cloud).get();
    expect(after?.endReason).toBe("failed");
    expect(isRunning(after?.runs ?? [])).toBe(false);
    expect(after?.runs.at(-1)?.end).toBe(Date.parse(after?.endedAt as string));
    await expectBooksBalance(t);
  });
});

describe("a cloud a month of which could not be charged exactly", () => {
  // 1.00/h: a month (744 h) of 121,064,506,113 clouds passes 2^53 − 1 minor units; one fewer does not.
  const tooMany = 121_064_506_113;

  it("is refused when bought or resized (400 naming /amount), and nothing changes", async () => {
    const t = await tenantWithCatalog(1, 999_999_999_999);
    const bought = await call("POST", "/v1/subscriptions/", {
      token: t.partnerKey,
      body: { objects: [{ customer: t.customers[0], resource: "cumulus", amount: tooMany }] },
    });
    expect(bought.status, bought.text).toBe(400);
    expect(bought.body.errors).toEqual([
      expect.objectContaining({ point: "/objects/0/amount", message: expect.stringMatching(/usage line/) }),
    ]);
    const id = await cloudOf(t);
    const resized = await call("PATCH", `/v1/subscriptions/${id}/`, {
      token: t.partnerKey,
      body: { amount: tooMany },
    });
    expect(resized.status, resized.text).toBe(400);
    expect(resized.body.errors).toEqual([expect.objectContaining({ point: "/amount" })]);
    const fits = await call("PATCH", `/v1/subscriptions/${id}/`, {
      token: t.partnerKey,
      body: { amount: tooMany - 1 },
    });
    expect(fits.status, fits.text).toBe(200);
    await expectBooksBalance(t);
  });
});
