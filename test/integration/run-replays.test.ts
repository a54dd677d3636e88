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
import { call, expectOk, type Tenant, tenantWithCatalog, usageOf } from "../helpers";
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
  change: { kind: "run"; action: "start" | "stop" } | { kind: "update"; amount: number } | { kind: "cancel" },
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
      change.kind === "cancel"
        ? { ...common, ...change }
        : { ...common, ...change, ref: v7({ msecs: accepted.getTime() }) },
    now: accepted,
  });
  return opRef;
}

const queuedRun = (t: Tenant, id: string, action: "start" | "stop", ago: number) =>
  queued(t, id, ago, { kind: "run", action });

async function deliver(opRef: string, attempts = 1) {
  const batch = createMessageBatch<OperationMessage>("stratus-operations", [
    { id: `msg-${opRef}`, timestamp: new Date(), attempts, body: { opRef } },
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

/** A resize is applied once, however often its work runs: never over a later resize. */
describe("a resize run again", () => {
  const resize = (t: Tenant, id: string, amount: number, headers: Record<string, string> = {}) =>
    call("PATCH", `/v1/subscriptions/${id}/`, { token: t.partnerKey, body: { amount }, headers });

  it("by its Idempotency-Key after a later resize keeps the later size, billed and held", async () => {
    const t = await tenantWithCatalog(1, 100);
    const id = await cloudOf(t);
    await expectOk(call("POST", `/v1/subscriptions/${id}/action/?do=start`, { token: t.partnerKey }));
    // The resize to 5 takes effect; its answer is lost.
    armFault("request.answered");
    expect((await resize(t, id, 5, { "idempotency-key": "to-5" })).status).toBe(500);
    expect((await expectOk(resize(t, id, 1))).amount).toBe(1);
    const retry = await resize(t, id, 5, { "idempotency-key": "to-5" });
    expect(retry.status, retry.text).toBe(200);
    expect(retry.body.amount).toBe(1);
    const after = await subscriptionObject(env, id).get();
    expect(after?.runs.map((r) => r.quantity)).toEqual([1, 5, 1]);
    expect((await usageOf(t, 0, "cumulus")).usage).toBe(1);
    await expectBooksBalance(t);
  });

  it("by a redelivered operation after a later resize keeps the later size", async () => {
    const t = await tenantWithCatalog(1, 100);
    const id = await cloudOf(t);
    await expectOk(call("POST", `/v1/subscriptions/${id}/action/?do=start`, { token: t.partnerKey }));
    const opRef = await queued(t, id, 60_000, { kind: "update", amount: 5 });
    // Applied, and its result lost: the consumer dies after the work.
    armFault("operation.performed");
    await deliver(opRef);
    expect((await subscriptionObject(env, id).get())?.amount).toBe(5);
    await expectOk(resize(t, id, 1));
    await deliver(opRef, 2);
    const result = await expectOk(call("GET", `/v1/operations/${opRef}`, { token: t.partnerKey }));
    expect(result.amount).toBe(1);
    expect((await subscriptionObject(env, id).get())?.runs.map((r) => r.quantity)).toEqual([1, 5, 1]);
    expect((await usageOf(t, 0, "cumulus")).usage).toBe(1);
    await expectBooksBalance(t);
  });

  it("that waited in the queue changes nothing once a resize accepted after it was applied", async () => {
    const t = await tenantWithCatalog(1, 100);
    const id = await cloudOf(t);
    const opRef = await queued(t, id, 60_000, { kind: "update", amount: 5 });
    await expectOk(resize(t, id, 2));
    await deliver(opRef);
    expect((await expectOk(call("GET", `/v1/operations/${opRef}`, { token: t.partnerKey }))).amount).toBe(2);
    expect((await usageOf(t, 0, "cumulus")).usage).toBe(2);
    await expectBooksBalance(t);
  });
});

describe("work answered at once", () => {
  it("is the last accepted, whatever clock made an applied reference: a stop after a start applies", async () => {
    const t = await tenantWithCatalog(1, 100);
    const id = await cloudOf(t);
    // A start whose reference an instance with a clock 2 s fast made.
    const ahead = v7({ msecs: Date.now() + 2_000 });
    expect((await subscriptionObject(env, id).run("start", new Date(), { ref: ahead })).ok).toBe(true);
    const stopped = await expectOk(
      call("POST", `/v1/subscriptions/${id}/action/?do=stop`, { token: t.partnerKey }),
    );
    expect(stopped.run_state).toBe("stopped");
    expect(isRunning((await subscriptionObject(env, id).get())?.runs ?? [])).toBe(false);
    await expectBooksBalance(t);
  });
});

describe("a cancel", () => {
  it("that waited in the queue bills a cloud started meanwhile until the cancel ran", async () => {
    const t = await tenantWithCatalog(1, 100);
    const id = await cloudOf(t);
    const opRef = await queued(t, id, 1_000, { kind: "cancel" });
    await expectOk(call("POST", `/v1/subscriptions/${id}/action/?do=start`, { token: t.partnerKey }));
    await sleep(1_100);
    const before = Date.now();
    await deliver(opRef);
    const r = await subscriptionObject(env, id).get();
    expect(r?.endReason).toBe("cancelled");
    expect(r?.runs).toHaveLength(1);
    expect(r?.runs[0]?.end).toBeGreaterThanOrEqual(before);
    expect(Date.parse(r?.endedAt ?? "")).toBeGreaterThanOrEqual(before);
    await expectBooksBalance(t);
  });

  it("retried by its key after a 5xx bills the cloud until the retry ended it", async () => {
    const t = await tenantWithCatalog(1, 100);
    const id = await cloudOf(t);
    await expectOk(call("POST", `/v1/subscriptions/${id}/action/?do=start`, { token: t.partnerKey }));
    const cancel = () =>
      call("DELETE", `/v1/subscriptions/${id}/`, {
        token: t.partnerKey,
        headers: { "idempotency-key": "end" },
      });
    // It fails before it takes effect: the cloud runs on.
    armFault("subscription.step");
    expect((await cancel()).status).toBe(500);
    disarmFaults();
    await sleep(1_100);
    const before = Date.now();
    expect((await cancel()).status).toBe(200);
    const r = await subscriptionObject(env, id).get();
    expect(r?.runs[0]?.end).toBeGreaterThanOrEqual(before);
    await expectBooksBalance(t);
  });
});

describe("an operation out of attempts", () => {
  it("whose start took effect on its last attempt succeeded, as the cloud shows", async () => {
    const t = await tenantWithCatalog(1, 100);
    const id = await cloudOf(t);
    const opRef = await queuedRun(t, id, "start", 60_000);
    armFault("operation.performed");
    await deliver(opRef, 8);
    const op = await expectOk(call("GET", `/v1/operations/${opRef}`, { token: t.partnerKey }));
    expect(op.run_state).toBe("running");
    expect(isRunning((await subscriptionObject(env, id).get())?.runs ?? [])).toBe(true);
    await expectBooksBalance(t);
  });

  it("whose start did not take effect fails with 409, and the cloud stays stopped", async () => {
    const t = await tenantWithCatalog(1, 100);
    const id = await cloudOf(t);
    const opRef = await queuedRun(t, id, "start", 60_000);
    armFault("operation.started");
    await deliver(opRef, 8);
    expect((await call("GET", `/v1/operations/${opRef}`, { token: t.partnerKey })).status).toBe(409);
    expect((await subscriptionObject(env, id).get())?.runs).toEqual([]);
    await expectBooksBalance(t);
  });
});
