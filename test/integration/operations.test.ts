import {
  createExecutionContext,
  createMessageBatch,
  evictDurableObject,
  getQueueResult,
} from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { OperationPayload } from "../../src/app/intents";
import { MAX_ATTEMPTS, requeueStalledOperations, runOperation } from "../../src/app/operations";
import { perform } from "../../src/app/perform";
import { abandon, type PurchaseIds } from "../../src/app/subscriptions";
import { createOperation, findOperation } from "../../src/db/operations";
import { uuidv7 } from "../../src/domain/ids";
import { recoveryBoundMs } from "../../src/domain/recovery";
import { EVERYTHING } from "../../src/domain/scope";
import { respond } from "../../src/http/operations";
import worker from "../../src/index";
import type { OperationMessage } from "../../src/objects/operations-queue";
import { subscriptionShard } from "../../src/objects/subscription-object";
import {
  call,
  eventually,
  expectOk,
  failingD1,
  type Reply,
  type Tenant,
  tenant,
  tenantWithCatalog,
  usageOf,
} from "../helpers";

/** Async operations: 202 + Location + Retry-After, the status endpoint, and exactly-once work. */

const ASYNC = { prefer: "respond-async" };

const setup = (limit = 100) => tenantWithCatalog(1, limit);

function expectAccepted(r: Reply) {
  expect(r.status).toBe(202);
  expect(r.headers.get("location")).toMatch(/^\/v1\/operations\/op_[0-9a-f]{32}$/);
  expect(Number(r.headers.get("retry-after"))).toBeGreaterThan(0);
  expect(r.headers.get("preference-applied")).toBe("respond-async");
  expect(r.body).toMatchObject({ opRef: expect.stringMatching(/^op_/), status: "queued" });
  return r.headers.get("location") as string;
}

/** Polls the status endpoint as a client would, until it stops answering 202. */
async function poll(t: Tenant, location: string): Promise<Reply> {
  for (let i = 0; i < 100; i++) {
    const r = await call("GET", location, { token: t.partnerKey });
    if (r.status !== 202) return r;
    expect(Number(r.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(["queued", "running"]).toContain(r.body.status);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`operation ${location} did not finish`);
}

/** Delivers one message to the Worker's queue handler, as the queue would. */
async function deliver(opRef: string, attempts = 1) {
  const batch = createMessageBatch<OperationMessage>("stratus-operations", [
    { id: `msg-${opRef}-${attempts}`, timestamp: new Date(), attempts, body: { opRef } },
  ]);
  const ctx = createExecutionContext();
  await worker.queue(batch, env);
  return getQueueResult(batch, ctx);
}

const opRefOf = (location: string) => location.split("/").at(-1) as string;

describe("accepting and polling", () => {
  it("creates asynchronously: 202, then the status endpoint answers 201 with the subscriptions", async () => {
    const t = await setup();
    const r = await call("POST", "/v1/subscriptions/", {
      token: t.partnerKey,
      headers: ASYNC,
      body: { objects: [{ customer: t.customers[0], resource: "cpu", amount: 3, period: "1 week" }] },
    });
    const location = expectAccepted(r);
    const done = await poll(t, location);
    expect(done.status).toBe(201);
    expect(done.headers.get("location")).toBe(`/v1/subscriptions/${done.body.objects[0].id}/`);
    expect(done.body.objects[0]).toMatchObject({ resource: "cpu", amount: 3, status: "active" });
    expect(done.body.meta.orders).toHaveLength(1);
    expect(await usageOf(t, 0, "cpu")).toMatchObject({ usage: 3, pending: 0 });
    const again = await call("GET", location, { token: t.partnerKey });
    expect(again.text).toBe(done.text);
  });

  it("answers at once without the preference: 201 for create, 200 for update", async () => {
    const t = await setup();
    const created = await call("POST", "/v1/subscriptions/", {
      token: t.partnerKey,
      body: { objects: [{ customer: t.customers[0], resource: "mem", amount: 1, period: "1 day" }] },
    });
    expect(created.status).toBe(201);
    const id = created.body.objects[0].id;
    const updated = await call("PATCH", `/v1/subscriptions/${id}/`, {
      token: t.partnerKey,
      body: { auto_renew: true },
    });
    expect(updated.status).toBe(200);
    expect(updated.headers.get("location")).toBe(`/v1/subscriptions/${id}/`);
  });

  it("reads Prefer as RFC 7240 does: an empty value is none, a parameter is not a preference", async () => {
    const t = await setup();
    const buy = (prefer: string) =>
      call("POST", "/v1/subscriptions/", {
        token: t.partnerKey,
        headers: { prefer },
        body: { objects: [{ customer: t.customers[0], resource: "mem", amount: 1, period: "1 day" }] },
      });
    for (const prefer of ['respond-async=""', "RESPOND-ASYNC; wait=10", "wait=10, respond-async"]) {
      expect((await buy(prefer)).status, prefer).toBe(202);
    }
    // `respond-async` here is a parameter of `return`, which stratus does not take.
    expect((await buy("return=minimal; respond-async")).status).toBe(201);
  });

  it("runs PATCH amount, actions and cancel asynchronously, each with a final 200", async () => {
    const t = await setup();
    const sub = (
      await expectOk(
        call("POST", "/v1/subscriptions/", {
          token: t.partnerKey,
          body: { objects: [{ customer: t.customers[0], resource: "cumulus", amount: 1 }] },
        }),
        201,
      )
    ).objects[0];
    const steps: Array<[string, string, unknown, Record<string, unknown>]> = [
      ["PATCH", `/v1/subscriptions/${sub.id}/`, { amount: 4 }, { amount: 4 }],
      ["POST", `/v1/subscriptions/${sub.id}/action/?do=start`, undefined, { run_state: "running" }],
      ["POST", `/v1/subscriptions/${sub.id}/action/?do=auto_renew`, undefined, { auto_renew: true }],
      ["POST", `/v1/subscriptions/${sub.id}/action/?do=stop`, undefined, { run_state: "stopped" }],
      ["DELETE", `/v1/subscriptions/${sub.id}/`, undefined, { status: "expired", end_reason: "cancelled" }],
    ];
    for (const [method, path, body, expected] of steps) {
      const r = await call(method, path, { token: t.partnerKey, headers: ASYNC, ...(body ? { body } : {}) });
      const done = await poll(t, expectAccepted(r));
      expect(done.status, `${method} ${path}`).toBe(200);
      expect(done.body).toMatchObject(expected);
    }
    expect(await usageOf(t, 0, "cumulus")).toMatchObject({ usage: 0, pending: 0 });
  });

  it("extends asynchronously", async () => {
    const t = await setup();
    const sub = (
      await expectOk(
        call("POST", "/v1/subscriptions/", {
          token: t.partnerKey,
          body: { objects: [{ customer: t.customers[0], resource: "dssd", amount: 2, period: "1 week" }] },
        }),
        201,
      )
    ).objects[0];
    const r = await call("POST", `/v1/subscriptions/${sub.id}/action/?do=extend`, {
      token: t.partnerKey,
      headers: ASYNC,
    });
    const done = await poll(t, expectAccepted(r));
    expect(done.status).toBe(200);
    expect(done.body).toMatchObject({ extends: sub.id, start_time: sub.end_time, period: "1 week" });
    // The chain holds its amount once.
    expect(await usageOf(t, 0, "dssd")).toMatchObject({ usage: 2 });
  });

  it("persists a failure: quota exceeded while it ran answers the 409 quota-exceeded problem", async () => {
    const t = await setup(5);
    const object = { customer: t.customers[0], resource: "cpu", amount: 4, period: "1 day" };
    const first = await call("POST", "/v1/subscriptions/", {
      token: t.partnerKey,
      headers: ASYNC,
      body: { objects: [object] },
    });
    const second = await call("POST", "/v1/subscriptions/", {
      token: t.partnerKey,
      headers: ASYNC,
      body: { objects: [object] },
    });
    const results = [await poll(t, expectAccepted(first)), await poll(t, expectAccepted(second))];
    const codes = results.map((r) => r.status).sort();
    expect(codes).toEqual([201, 409]);
    const failed = results.find((r) => r.status === 409) as Reply;
    expect(failed.headers.get("content-type")).toBe("application/problem+json");
    expect(failed.body).toMatchObject({
      type: "https://stratus.dev/problems/quota-exceeded",
      status: 409,
      resource: "cpu",
      limit: 5,
      usage: 4,
      requested: 4,
      // The poll that read the stored failure.
      request_id: failed.headers.get("x-request-id"),
    });
    expect(await usageOf(t, 0, "cpu")).toMatchObject({ usage: 4, pending: 0 });
  });

  it("validates before accepting: bad input is a 4xx at once and makes no operation", async () => {
    const t = await setup();
    const bad = await call("POST", "/v1/subscriptions/", {
      token: t.partnerKey,
      headers: ASYNC,
      body: { objects: [{ customer: t.customers[0], resource: "cpu", amount: 1 }] },
    });
    expect(bad.status).toBe(400);
    const unknown = await call("PATCH", "/v1/subscriptions/00000000-0000-7000-8000-000000000000/", {
      token: t.partnerKey,
      headers: ASYNC,
      body: { amount: 2 },
    });
    expect(unknown.status).toBe(404);
    const list = await expectOk(call("GET", "/v1/operations", { token: t.partnerKey }));
    expect(list.objects).toEqual([]);
  });

  it("lists operations by status with a cursor, and hides other partners' operations", async () => {
    const t = await setup();
    const other = await tenant({ customers: 0 });
    const locations: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await call("POST", "/v1/subscriptions/", {
        token: t.partnerKey,
        headers: ASYNC,
        body: { objects: [{ customer: t.customers[0], resource: "mem", amount: 1, period: "1 day" }] },
      });
      locations.push(expectAccepted(r));
    }
    for (const location of locations) await poll(t, location);
    const page = await expectOk(
      call("GET", "/v1/operations?status=succeeded&limit=2", { token: t.partnerKey }),
    );
    expect(page.objects).toHaveLength(2);
    expect(page.objects[0]).toMatchObject({ kind: "purchase", status: "succeeded", result_status: 201 });
    const rest = await expectOk(
      call("GET", `/v1/operations?status=succeeded&limit=2&cursor=${page.meta.next_cursor}`, {
        token: t.partnerKey,
      }),
    );
    expect(rest.objects).toHaveLength(1);
    expect(
      (await expectOk(call("GET", "/v1/operations?status=failed", { token: t.partnerKey }))).objects,
    ).toEqual([]);
    const stranger = await call("GET", locations[0] as string, { token: other.partnerKey });
    expect(stranger.status).toBe(404);
    expect((await expectOk(call("GET", "/v1/operations", { token: other.partnerKey }))).objects).toEqual([]);
    expect((await call("GET", "/v1/operations/op_nope", { token: t.partnerKey })).status).toBe(404);
  });

  it("replays the same 202 and opRef for a repeated Idempotency-Key", async () => {
    const t = await setup();
    const request = {
      token: t.partnerKey,
      headers: { ...ASYNC, "idempotency-key": "async-once" },
      body: { objects: [{ customer: t.customers[0], resource: "cpu", amount: 1, period: "1 day" }] },
    };
    const first = await call("POST", "/v1/subscriptions/", request);
    const second = await call("POST", "/v1/subscriptions/", request);
    expect(second.status).toBe(202);
    expect(second.text).toBe(first.text);
    expect(second.headers.get("location")).toBe(first.headers.get("location"));
    expect(second.headers.get("idempotent-replayed")).toBe("true");
    await poll(t, expectAccepted(first));
    expect(await usageOf(t, 0, "cpu")).toMatchObject({ usage: 1 });
  });
});

describe("exactly once", () => {
  /** An operation accepted but not yet run by the queue: the test runs it by hand. */
  async function accepted(t: Tenant, object: Record<string, unknown>) {
    const r = await call("POST", "/v1/subscriptions/", {
      token: t.partnerKey,
      headers: ASYNC,
      body: { objects: [object] },
    });
    const opRef = opRefOf(expectAccepted(r));
    const op = await findOperation(env, opRef, EVERYTHING);
    return { opRef, payload: op?.payload };
  }

  it("a redelivered message does not run the work again", async () => {
    const t = await setup();
    const { opRef } = await accepted(t, {
      customer: t.customers[0],
      resource: "cpu",
      amount: 2,
      period: "1 day",
    });
    const first = await deliver(opRef, 1);
    const second = await deliver(opRef, 2);
    expect(first.explicitAcks).toHaveLength(1);
    expect(second.explicitAcks).toHaveLength(1);
    const done = await poll(t, `/v1/operations/${opRef}`);
    expect(done.status).toBe(201);
    expect(await usageOf(t, 0, "cpu")).toMatchObject({ usage: 2, pending: 0 });
    const list = await expectOk(call("GET", "/v1/subscriptions/?resource=cpu", { token: t.partnerKey }));
    expect(list.objects).toHaveLength(1);
  });

  it("a consumer that died after the objects changed, before marking the operation, completes once", async () => {
    const t = await setup();
    const { opRef, payload } = await accepted(t, {
      customer: t.customers[0],
      resource: "mem",
      amount: 3,
      period: "1 day",
    });
    // The work ran to the end, but the consumer died before recording the result.
    await perform(env, payload as never);
    const op = await findOperation(env, opRef, EVERYTHING);
    expect(op?.status).not.toBe("succeeded");
    await deliver(opRef, 2);
    const done = await poll(t, `/v1/operations/${opRef}`);
    expect(done.status).toBe(201);
    expect(await usageOf(t, 0, "mem")).toMatchObject({ usage: 3, pending: 0 });
    const list = await expectOk(call("GET", "/v1/subscriptions/?resource=mem", { token: t.partnerKey }));
    expect(list.objects).toHaveLength(1);
    expect(list.objects[0].id).toBe(done.body.objects[0].id);
  });

  it("an extension run twice, with the object evicted in between, extends once", async () => {
    const t = await setup();
    const sub = (
      await expectOk(
        call("POST", "/v1/subscriptions/", {
          token: t.partnerKey,
          body: { objects: [{ customer: t.customers[0], resource: "dssd", amount: 1, period: "1 week" }] },
        }),
        201,
      )
    ).objects[0];
    const r = await call("POST", `/v1/subscriptions/${sub.id}/action/?do=extend`, {
      token: t.partnerKey,
      headers: ASYNC,
    });
    const opRef = opRefOf(expectAccepted(r));
    const payload = (await findOperation(env, opRef, EVERYTHING))?.payload;
    await perform(env, payload as never);
    await evictDurableObject(subscriptionShard(env, sub.id));
    await runOperation(env, opRef);
    const done = await poll(t, `/v1/operations/${opRef}`);
    expect(done.status).toBe(200);
    const root = await expectOk(call("GET", `/v1/subscriptions/${sub.id}/`, { token: t.partnerKey }));
    expect(root.descendants).toEqual([done.body.id]);
    expect(await usageOf(t, 0, "dssd")).toMatchObject({ usage: 1, pending: 0 });
  });

  it("a failure that is not the request's fault is retried, then given up as a 409 kept at its status URL", async () => {
    const t = await setup();
    const opRef = `op_${"0".repeat(31)}1`;
    // Work that cannot run (as if the code had a bug): it throws something other than a 4xx.
    await createOperation(env, {
      opRef,
      partnerId: t.partnerId,
      customerId: null,
      kind: "purchase",
      payload: { kind: "purchase", partnerId: t.partnerId, at: new Date().toISOString(), objects: null },
      now: new Date(),
    });
    const retried = await deliver(opRef, 1);
    expect(retried.explicitAcks).toEqual([]);
    expect(retried.retryMessages.map((m) => m.msgId)).toEqual([`msg-${opRef}-1`]);
    expect((await call("GET", `/v1/operations/${opRef}`, { token: t.partnerKey })).status).toBe(202);
    const abandoned = await deliver(opRef, MAX_ATTEMPTS);
    expect(abandoned.explicitAcks).toEqual([`msg-${opRef}-${MAX_ATTEMPTS}`]);
    const final = await call("GET", `/v1/operations/${opRef}`, { token: t.partnerKey });
    expect(final.status).toBe(409);
    expect(final.body).toMatchObject({ status: 409 });
    expect(final.body.detail).toContain(`could not be completed in ${MAX_ATTEMPTS} attempts`);
  });
});

describe("work given up half-way", () => {
  /**
   * The same bindings, except that D1 batches (the orders' insert) fail. The purchases below are
   * of two subscriptions: one subscription's order is written by its shard, with its projection.
   */
  const ordersDown = (): Env => ({ ...env, DB: failingD1(env.DB, "batch") });

  const purchase = (t: Tenant, ids: PurchaseIds): OperationPayload => ({
    kind: "purchase",
    partnerId: t.partnerId,
    at: new Date().toISOString(),
    objects: [
      { customer: t.customers[0] as string, resource: "cpu", amount: 2, period: "1 week" },
      { customer: t.customers[0] as string, resource: "mem", amount: 1, period: "1 week" },
    ],
    ids,
  });

  const idsFor = (t: Tenant) => {
    const order = crypto.randomUUID();
    const ids: PurchaseIds = {
      orders: { [t.customers[0] as string]: order },
      subscriptions: [uuidv7(), uuidv7()],
    };
    return { ids, order };
  };

  async function expectUndone(t: Tenant, ids: PurchaseIds) {
    expect(await usageOf(t, 0, "cpu")).toEqual({ usage: 0, limit: 100, pending: 0 });
    const id = ids.subscriptions[0] as string;
    const sub = await expectOk(call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey }));
    expect(sub).toMatchObject({ status: "expired", end_reason: "failed" });
  }

  it("a request's purchase that fails after its objects exist is undone before the 5xx", async () => {
    const t = await setup();
    const { ids } = idsFor(t);
    const request = new Request("http://stratus.test/v1/subscriptions/", { method: "POST" });
    await expect(respond(ordersDown(), request, purchase(t, ids))).rejects.toThrow("D1 is down");
    await expectUndone(t, ids);
  });

  it("an operation out of attempts undoes what its purchase did, and fails as a 409", async () => {
    const t = await setup();
    const { ids } = idsFor(t);
    const opRef = `op_${crypto.randomUUID().replaceAll("-", "")}`;
    await createOperation(env, {
      opRef,
      partnerId: t.partnerId,
      customerId: null,
      kind: "purchase",
      payload: purchase(t, ids),
      now: new Date(),
    });
    const batch = createMessageBatch<OperationMessage>("stratus-operations", [
      { id: `msg-${opRef}`, timestamp: new Date(), attempts: MAX_ATTEMPTS, body: { opRef } },
    ]);
    await worker.queue(batch, ordersDown());
    await expect(getQueueResult(batch, createExecutionContext())).resolves.toMatchObject({
      explicitAcks: [`msg-${opRef}`],
    });
    await expectUndone(t, ids);
    // Its undo failed at the orders: whether it took effect is not known until one finishes, so
    // the operation is left to the stalled-operation sweep, whose next run finds it undone.
    expect((await call("GET", `/v1/operations/${opRef}`, { token: t.partnerKey })).status).toBe(202);
    await requeueStalledOperations(env, new Date(Date.now() + recoveryBoundMs(env) + 1_000));
    const final = await eventually(async () => {
      const reply = await call("GET", `/v1/operations/${opRef}`, { token: t.partnerKey });
      return reply.status === 202 ? undefined : reply;
    }, "the operation to finish");
    expect(final.status).toBe(409);
  });

  it("a purchase whose commission was accepted took effect: giving it up undoes nothing", async () => {
    const t = await setup();
    const { ids, order: orderId } = idsFor(t);
    await perform(env, purchase(t, ids));
    expect(await abandon(env, ids, new Date())).toBe("took effect");
    const id = ids.subscriptions[0] as string;
    const sub = await expectOk(call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey }));
    expect(sub).toMatchObject({ status: "active", end_reason: null });
    expect(await usageOf(t, 0, "cpu")).toMatchObject({ usage: 2, pending: 0 });
    const order = await expectOk(call("GET", `/v1/orders/${orderId}`, { token: t.partnerKey }));
    expect(order).toMatchObject({ state: "completed" });
  });
});

describe("a service's consumption report run as an operation", () => {
  it("answers a 202 whose Location the service's own token polls; the partner's other operations do not exist for it", async () => {
    const t = await tenantWithCatalog(1, 100);
    const customer = t.customers[0] as string;
    const bought = await call("POST", "/v1/subscriptions/", {
      token: t.partnerKey,
      body: { objects: [{ customer, resource: "tx", amount: 50 }] },
      headers: { prefer: "respond-async" },
    });
    expect(bought.status).toBe(202);
    const reported = await call("POST", `/v1/customers/${customer}/consumption`, {
      token: t.serviceToken,
      headers: { prefer: "respond-async" },
      body: { resource: "tx", amount: 5 },
    });
    expect(reported.status).toBe(202);
    const location = reported.headers.get("location") as string;
    expect([200, 202]).toContain((await call("GET", location, { token: t.serviceToken })).status);
    const purchase = await call("GET", bought.headers.get("location") as string, { token: t.serviceToken });
    expect(purchase.status, purchase.text).toBe(404);
    expect((await call("GET", location, { token: t.partnerKey })).status).not.toBe(404);
  });
});
