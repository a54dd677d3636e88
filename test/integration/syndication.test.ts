import {
  createExecutionContext,
  createMessageBatch,
  createScheduledController,
  getQueueResult,
} from "cloudflare:test";
import { env } from "cloudflare:workers";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { renewOrExpire } from "../../src/app/renewals";
import { attemptDelivery } from "../../src/app/webhooks";
import { findDelivery } from "../../src/db/webhooks";
import { MAX_DELAY_SECONDS, RETRY_SCHEDULE } from "../../src/domain/webhooks";
import worker from "../../src/index";
import type { WebhookMessage } from "../../src/objects/webhook-events";
import { expectBooksBalance } from "../books";
import {
  call,
  dueBy,
  eventually,
  expectOk,
  type Reply,
  syndicatedProduct,
  syndicatedProductBody,
  type Tenant,
  tenant,
  unique,
  usageOf,
  withCatalog,
} from "../helpers";

/**
 * Syndication: events pushed to vendors' endpoints (signed, retried, dead-lettered, redelivered)
 * and the vendor API. Outbound fetch is intercepted: each test registers a receiver for its host.
 */

type Receiver = (request: Request) => Response | Promise<Response>;
const receivers = new Map<string, Receiver>();
const received = new Map<string, Array<{ headers: Record<string, string>; body: string }>>();

beforeAll(() => {
  const realFetch = globalThis.fetch;
  vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
    const request = new Request(input as RequestInfo, init);
    const host = new URL(request.url).host;
    const receiver = receivers.get(host);
    if (!receiver) return realFetch(input as RequestInfo, init);
    const body = await request.clone().text();
    received.set(host, [
      ...(received.get(host) ?? []),
      { headers: Object.fromEntries(request.headers), body },
    ]);
    return receiver(request);
  });
});

afterAll(() => {
  vi.restoreAllMocks();
});

interface Syndicated {
  t: Tenant;
  host: string;
  product: string;
  secret: string;
  vendorId: string;
  vendorToken: string;
}

/**
 * A tenant (a new one, or `existing`), a vendor with a token, and a syndicated product of it whose
 * endpoint is `host`.
 */
async function syndicated(receiver: Receiver, existing?: Tenant): Promise<Syndicated> {
  const t = existing ?? (await tenant({ customers: 1 }));
  if (!existing) await withCatalog(t);
  const host = `${unique("vendor")}.example`;
  receivers.set(host, receiver);
  const { product, vendorId, secret } = await syndicatedProduct(t, host);
  expect(secret).toMatch(/^whsec_/);
  const token = await expectOk(
    call("POST", `/v1/vendors/${vendorId}/tokens`, { token: t.operator, body: {} }),
    201,
  );
  return { t, host, product, secret, vendorId, vendorToken: token.token };
}

const accepted = async (s: Syndicated, amount = 2): Promise<Reply> =>
  call("POST", "/v1/subscriptions/", {
    token: s.t.partnerKey,
    body: { objects: [{ customer: s.t.customers[0], resource: s.product, amount, period: "1 month" }] },
  });

async function deliveries(s: Syndicated, query = "") {
  return (await expectOk(call("GET", `/v1/webhooks/deliveries${query}`, { token: s.vendorToken })))
    .objects as Array<{
    id: string;
    type: string;
    status: string;
    sequence: number;
    subscription: string;
    attempts: number;
    next_attempt_at: string | null;
  }>;
}

/** Buys one of `s`'s product and waits for its CREATED event's first delivery attempt. */
async function firstAttempt(s: Syndicated) {
  await subscriptionOf(s, (await accepted(s)).headers.get("location") as string);
  const [first] = await deliveries(s);
  return eventually(async () => {
    const d = await findDelivery(env, first?.id ?? "", null);
    return d && d.attempts >= 1 ? d : undefined;
  }, "the first attempt");
}

async function subscriptionOf(s: Syndicated, location: string): Promise<string> {
  const op = await expectOk(call("GET", location, { token: s.t.partnerKey }), 202);
  expect(op.status).toMatch(/queued|running/);
  const created = await eventually(
    async () => (await deliveries(s)).find((d) => d.type === "CREATED"),
    "CREATED",
  );
  return created.subscription;
}

describe("the full flow", () => {
  it("POST (202) → CREATED → vendor reads → PATCH DEPLOYED → the operation answers 201", async () => {
    const s = await syndicated(() => new Response(null, { status: 204 }));
    const r = await accepted(s);
    expect(r.status).toBe(202);
    // It waits for its vendor; no Prefer was sent, so none is said to be applied (RFC 7240).
    expect(r.headers.get("preference-applied")).toBeNull();
    const location = r.headers.get("location") as string;
    const id = await subscriptionOf(s, location);

    const delivered = await eventually(
      async () => (await deliveries(s, "?status=delivered")).find((d) => d.type === "CREATED"),
      "CREATED delivered",
    );
    expect(delivered).toMatchObject({ subscription: id, sequence: 1, attempts: 1 });
    const [request] = received.get(s.host) ?? [];
    expect(request?.headers).toMatchObject({
      "content-type": "application/json; charset=utf-8",
      accept: "application/json",
      "user-agent": "ClouDesire",
      "webhook-id": delivered.id,
    });
    const payload = new Webhook(s.secret).verify(request?.body ?? "", request?.headers ?? {});
    expect(payload).toEqual({
      date: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/),
      entity: "Subscription",
      entityUrl: `http://127.0.0.1:8787/api/subscription/${id}`,
      id,
      type: "CREATED",
      sequence: 1,
    });

    const sub = await expectOk(call("GET", `/api/subscription/${id}`, { token: s.vendorToken }));
    expect(sub).toMatchObject({
      id,
      self: `subscription/${id}`,
      deploymentStatus: "PENDING",
      syndicatedEndpoints: [],
      quantity: 2,
      buyer: { url: `user/${s.t.customers[0]}` },
    });
    const orderId = (sub.orders[0].url as string).split("/")[1];
    const order = await expectOk(call("GET", `/api/order/${orderId}`, { token: s.vendorToken }));
    expect(order).toMatchObject({
      id: orderId,
      self: `order/${orderId}`,
      buyer: { url: `user/${s.t.customers[0]}` },
      subscription: { url: `subscription/${id}` },
      currency: "EUR",
      state: "PENDING",
    });
    expect(typeof order.totalPrice).toBe("number");
    // Where the spec's vendor finds which version of its product was bought.
    expect(order.budget).toEqual({
      configuration: { url: `productVersion/${s.product}` },
      endOfPeriod: sub.endDate,
      lines: order.lines,
      nation: null,
      totalPrice: order.totalPrice,
    });
    const user = await expectOk(call("GET", `/api/user/${s.t.customers[0]}`, { token: s.vendorToken }));
    expect(user).toMatchObject({
      id: s.t.customers[0],
      self: `user/${s.t.customers[0]}`,
      name: "customer 0",
      activated: true,
    });
    expect(user.activationDate).toBe(user.creationDate);
    expect(await usageOf(s.t, 0, s.product)).toEqual({ usage: 2, limit: 10, pending: 2 });

    const patched = await call("PATCH", `/api/subscription/${id}`, {
      token: s.vendorToken,
      body: {
        deploymentStatus: "DEPLOYED",
        syndicatedEndpoints: ["http://vendor.example.org"],
        endUserIstructions: "Use your email as login",
      },
    });
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({
      deploymentStatus: "DEPLOYED",
      syndicatedEndpoints: ["http://vendor.example.org"],
      endUserInstructions: "Use your email as login",
    });
    const done = await call("GET", location, { token: s.t.partnerKey });
    expect(done.status).toBe(201);
    expect(done.body.objects[0]).toMatchObject({ id, deployment_status: "DEPLOYED", status: "active" });
    expect(done.headers.get("location")).toBe(`/v1/subscriptions/${id}/`);
    expect(await usageOf(s.t, 0, s.product)).toEqual({ usage: 2, limit: 10, pending: 0 });
    const completed = await expectOk(call("GET", `/api/order/${orderId}`, { token: s.vendorToken }));
    expect(completed.state).toBe("VENDOR_APPROVED");
    const modified = await eventually(
      async () => (await deliveries(s)).find((d) => d.type === "MODIFIED"),
      "MODIFIED for the deployment",
    );
    expect(modified.sequence).toBe(2);
  });

  it("a PATCH that changes nothing is no new version: no event, the same sequence", async () => {
    const s = await syndicated(() => new Response(null, { status: 204 }));
    const location = (await accepted(s)).headers.get("location") as string;
    const id = await subscriptionOf(s, location);
    const deploy = { deploymentStatus: "DEPLOYED", endUserInstructions: "Sign in with your e-mail" };
    const deployed = await expectOk(
      call("PATCH", `/api/subscription/${id}`, { token: s.vendorToken, body: deploy }),
    );
    // As a vendor answering MODIFIED by asserting what it did would: it must not make another MODIFIED.
    for (const body of [
      deploy,
      { deploymentStatus: "DEPLOYED" },
      { endUserIstructions: deploy.endUserInstructions },
    ]) {
      const again = await expectOk(call("PATCH", `/api/subscription/${id}`, { token: s.vendorToken, body }));
      expect(again.sequence).toBe(deployed.sequence);
    }
    expect((await call("GET", location, { token: s.t.partnerKey })).status).toBe(201);
    const modified = (await deliveries(s)).filter((d) => d.type === "MODIFIED");
    expect(modified.map((d) => d.sequence)).toEqual([deployed.sequence]);
    // Two spellings of the instructions that disagree are refused, and nothing changes.
    const both = await call("PATCH", `/api/subscription/${id}`, {
      token: s.vendorToken,
      body: { endUserInstructions: "A", endUserIstructions: "B" },
    });
    expect(both.status).toBe(400);
    expect(
      (await expectOk(call("GET", `/api/subscription/${id}`, { token: s.vendorToken }))).endUserInstructions,
    ).toBe(deploy.endUserInstructions);
  });

  it("an extension is CREATED for its term and nothing for the term it follows (its place taken is bookkeeping)", async () => {
    const s = await syndicated(() => new Response(null, { status: 204 }));
    const location = (await accepted(s)).headers.get("location") as string;
    const id = await subscriptionOf(s, location);
    await expectOk(
      call("PATCH", `/api/subscription/${id}`, {
        token: s.vendorToken,
        body: { deploymentStatus: "DEPLOYED" },
      }),
    );
    expect((await call("GET", location, { token: s.t.partnerKey })).status).toBe(201);
    const extension = await expectOk(
      call("POST", `/v1/subscriptions/${id}/action/?do=extend`, { token: s.t.partnerKey, body: {} }),
    );
    await eventually(
      async () => (await deliveries(s)).find((d) => d.subscription === extension.id && d.type === "CREATED"),
      "CREATED for the extension",
    );
    const ofFirst = (await deliveries(s)).filter((d) => d.subscription === id);
    expect(ofFirst.map((d) => [d.type, d.sequence])).toEqual([
      ["CREATED", 1],
      ["MODIFIED", 2],
    ]);
    expect((await expectOk(call("GET", `/api/subscription/${id}`, { token: s.vendorToken }))).sequence).toBe(
      2,
    );
  });

  it("FAILED undoes the purchase: the operation fails, the quota is released", async () => {
    const s = await syndicated(() => new Response(null, { status: 204 }));
    const r = await accepted(s, 3);
    const location = r.headers.get("location") as string;
    const id = await subscriptionOf(s, location);
    expect(await usageOf(s.t, 0, s.product)).toMatchObject({ usage: 3, pending: 3 });
    await expectOk(
      call("PATCH", `/api/subscription/${id}`, {
        token: s.vendorToken,
        body: { deploymentStatus: "FAILED" },
      }),
    );
    const failed = await call("GET", location, { token: s.t.partnerKey });
    expect(failed.status).toBe(424);
    expect(failed.headers.get("content-type")).toBe("application/problem+json");
    expect(await usageOf(s.t, 0, s.product)).toEqual({ usage: 0, limit: 10, pending: 0 });
    const sub = await expectOk(call("GET", `/v1/subscriptions/${id}/`, { token: s.t.partnerKey }));
    expect(sub).toMatchObject({ status: "expired", end_reason: "failed", deployment_status: "FAILED" });
    const again = await call("PATCH", `/api/subscription/${id}`, {
      token: s.vendorToken,
      body: { deploymentStatus: "DEPLOYED" },
    });
    expect(again.status).toBe(400);
  });

  it("a purchase undone by FAILED after another line was DEPLOYED ends when it failed, not when it was accepted", async () => {
    const s = await syndicated(() => new Response(null, { status: 204 }));
    const line = { customer: s.t.customers[0], resource: s.product, amount: 1, period: "1 week" };
    const r = await call("POST", "/v1/subscriptions/", {
      token: s.t.partnerKey,
      body: { objects: [line, line] },
    });
    const location = r.headers.get("location") as string;
    expect(r.status).toBe(202);
    const created = await eventually(async () => {
      const events = (await deliveries(s)).filter((d) => d.type === "CREATED");
      return events.length === 2 ? events.map((d) => d.subscription) : undefined;
    }, "both CREATED");
    const [deployed, failing] = created as [string, string];
    await scheduler.wait(20);
    await expectOk(
      call("PATCH", `/api/subscription/${deployed}`, {
        token: s.vendorToken,
        body: { deploymentStatus: "DEPLOYED" },
      }),
    );
    await scheduler.wait(20);
    const failedFrom = Date.now();
    await expectOk(
      call("PATCH", `/api/subscription/${failing}`, {
        token: s.vendorToken,
        body: { deploymentStatus: "FAILED" },
      }),
    );
    expect((await call("GET", location, { token: s.t.partnerKey })).status).toBe(424);
    for (const id of created) {
      const sub = await expectOk(call("GET", `/v1/subscriptions/${id}/`, { token: s.t.partnerKey }));
      expect(sub.end_reason).toBe("failed");
      // Never before it began (the deployed line's term started at its report) nor before FAILED.
      expect(Date.parse(sub.ended_at), id).toBeGreaterThanOrEqual(failedFrom);
      expect(Date.parse(sub.ended_at), id).toBeGreaterThanOrEqual(Date.parse(sub.start_time));
    }
  });

  it("a built-in line of a purchase waiting on its vendor is not extended; an ended one takes no report but UNDEPLOYED", async () => {
    const s = await syndicated(() => new Response(null, { status: 204 }));
    const r = await call("POST", "/v1/subscriptions/", {
      token: s.t.partnerKey,
      body: {
        objects: [
          { customer: s.t.customers[0], resource: s.product, amount: 1, period: "1 week" },
          { customer: s.t.customers[0], resource: "mem", amount: 3, period: "1 week" },
        ],
      },
    });
    const location = r.headers.get("location") as string;
    const id = await subscriptionOf(s, location);
    const list = await expectOk(call("GET", "/v1/subscriptions/?resource=mem", { token: s.t.partnerKey }));
    const mem = list.objects[0].id as string;
    // Extended now, the term would outlive the purchase's FAILED, charged and holding no quota.
    const extend = await call("POST", `/v1/subscriptions/${mem}/action/?do=extend`, {
      token: s.t.partnerKey,
    });
    expect(extend.status).toBe(409);
    expect(extend.body.detail).toContain("extend it once its operation has finished");
    await expectOk(
      call("PATCH", `/api/subscription/${id}`, {
        token: s.vendorToken,
        body: { deploymentStatus: "FAILED" },
      }),
    );
    expect((await call("GET", location, { token: s.t.partnerKey })).status).toBe(424);
    const after = await call("POST", `/v1/subscriptions/${mem}/action/?do=extend`, { token: s.t.partnerKey });
    expect(after.status).toBe(409);
    expect(await usageOf(s.t, 0, "mem")).toMatchObject({ usage: 0, pending: 0 });
    const charges = await expectOk(call("GET", "/v1/charges", { token: s.t.partnerKey }));
    expect(charges.objects).toEqual([]);
    // The failed subscription sends no more events: a report that would change it is refused.
    const before = await expectOk(call("GET", `/api/subscription/${id}`, { token: s.vendorToken }));
    for (const body of [
      { endUserInstructions: "after the end" },
      { syndicatedEndpoints: ["https://late.example"] },
    ]) {
      const late = await call("PATCH", `/api/subscription/${id}`, { token: s.vendorToken, body });
      expect(late.status, JSON.stringify(body)).toBe(409);
    }
    expect(await expectOk(call("GET", `/api/subscription/${id}`, { token: s.vendorToken }))).toEqual(before);
  });

  it("a cloud its vendor has not delivered neither runs nor changes size: nothing billed or held after FAILED", async () => {
    const s = await syndicated(() => new Response(null, { status: 204 }));
    const cloud = unique("cloud");
    const op = s.t.operator;
    await expectOk(
      call("PUT", `/v1/resources/stratus.${cloud}`, { token: op, body: { service: "stratus" } }),
    );
    await expectOk(
      call("PUT", `/v1/products/${cloud}`, {
        token: op,
        body: {
          name: "Vendor cloud",
          kind: "caas",
          unit: "vm",
          unit_price: "0.10",
          currency: "EUR",
          quota_resource: `stratus.${cloud}`,
          delivery: "syndicated",
          vendor: s.vendorId,
          endpoint: `https://${s.host}/hooks`,
        },
      }),
    );
    await expectOk(
      call("PUT", `/v1/customers/${s.t.customers[0]}/quotas`, {
        token: op,
        body: { resource: `stratus.${cloud}`, limit: 5 },
      }),
    );
    const r = await call("POST", "/v1/subscriptions/", {
      token: s.t.partnerKey,
      body: { objects: [{ customer: s.t.customers[0], resource: cloud, amount: 3 }] },
    });
    const location = r.headers.get("location") as string;
    const id = await subscriptionOf(s, location);
    const tried = [
      await call("POST", `/v1/subscriptions/${id}/action/?do=start`, { token: s.t.partnerKey }),
      await call("PATCH", `/v1/subscriptions/${id}/`, { token: s.t.partnerKey, body: { amount: 1 } }),
    ];
    for (const attempt of tried) {
      expect(attempt.status).toBe(409);
      expect(attempt.body.detail).toContain("still in progress");
    }
    expect(await usageOf(s.t, 0, cloud)).toMatchObject({ usage: 3, pending: 3 });
    await expectOk(
      call("PATCH", `/api/subscription/${id}`, {
        token: s.vendorToken,
        body: { deploymentStatus: "FAILED" },
      }),
    );
    expect((await call("GET", location, { token: s.t.partnerKey })).status).toBe(424);
    expect(await usageOf(s.t, 0, cloud)).toMatchObject({ usage: 0, pending: 0 });
    const usage = await expectOk(call("GET", `/v1/subscriptions/${id}/usage`, { token: s.t.partnerKey }));
    expect(usage.lines).toEqual([]);
    expect((await expectOk(call("GET", "/v1/charges", { token: s.t.partnerKey }))).objects).toEqual([]);
  });

  it("a due built-in line of a purchase waiting on its vendor renews once the purchase completes, not before", async () => {
    const s = await syndicated(() => new Response(null, { status: 204 }));
    const r = await call("POST", "/v1/subscriptions/", {
      token: s.t.partnerKey,
      body: {
        objects: [
          { customer: s.t.customers[0], resource: s.product, amount: 1, period: "1 month" },
          { customer: s.t.customers[0], resource: "mem", amount: 3, period: "1 day", auto_renew: true },
        ],
      },
    });
    const id = await subscriptionOf(s, r.headers.get("location") as string);
    const list = await expectOk(call("GET", "/v1/subscriptions/?resource=mem", { token: s.t.partnerKey }));
    const mem = list.objects[0];
    const due = new Date(Date.parse(mem.end_time) - 60_000);
    // Neither before its end nor after it: left for a later cron run, not expired.
    expect(await renewOrExpire(env, mem.id, due)).toBe("skipped");
    expect(await renewOrExpire(env, mem.id, new Date(due.getTime() + 5 * 60_000))).toBe("skipped");
    expect(
      await expectOk(call("GET", `/v1/subscriptions/${mem.id}/`, { token: s.t.partnerKey })),
    ).toMatchObject({
      end_reason: null,
      descendants: [],
    });
    await expectOk(
      call("PATCH", `/api/subscription/${id}`, {
        token: s.vendorToken,
        body: { deploymentStatus: "DEPLOYED" },
      }),
    );
    // The skipped renewal gave its place back: extended by hand before the next run, at once.
    const byHand = await call("POST", `/v1/subscriptions/${mem.id}/action/?do=extend`, {
      token: s.t.partnerKey,
    });
    expect(byHand.status, byHand.text).toBe(200);
    expect(await renewOrExpire(env, mem.id, new Date(due.getTime() + 10 * 60_000))).toBe("skipped");
    const byHandDue = new Date(Date.parse(byHand.body.end_time) - 60_000);
    expect(await renewOrExpire(env, byHand.body.id, byHandDue)).toBe("renewed");
    const renewed = await expectOk(call("GET", `/v1/subscriptions/${mem.id}/`, { token: s.t.partnerKey }));
    expect(renewed.descendants).toHaveLength(2);
    expect(await usageOf(s.t, 0, "mem")).toMatchObject({ usage: 3, pending: 0 });
  });

  it("a due line without auto_renew waits for its purchase too: FAILED then releases its quota once", async () => {
    const s = await syndicated(() => new Response(null, { status: 204 }));
    // Another live mem of the customer: 3 held, which a second release would take away.
    await expectOk(
      call("POST", "/v1/subscriptions/", {
        token: s.t.partnerKey,
        body: { objects: [{ customer: s.t.customers[0], resource: "mem", amount: 3, period: "1 month" }] },
      }),
      201,
    );
    const r = await call("POST", "/v1/subscriptions/", {
      token: s.t.partnerKey,
      body: {
        objects: [
          { customer: s.t.customers[0], resource: s.product, amount: 1, period: "1 month" },
          { customer: s.t.customers[0], resource: "mem", amount: 3, period: "1 day" },
        ],
      },
    });
    const id = await subscriptionOf(s, r.headers.get("location") as string);
    const list = await expectOk(call("GET", "/v1/subscriptions/?resource=mem", { token: s.t.partnerKey }));
    const mem = list.objects.find((o: { period: string }) => o.period === "1 day");
    expect(await renewOrExpire(env, mem.id, new Date(Date.parse(mem.end_time) + 60_000))).toBe("skipped");
    expect(await usageOf(s.t, 0, "mem")).toMatchObject({ usage: 6, pending: 3 });
    await expectOk(
      call("PATCH", `/api/subscription/${id}`, {
        token: s.vendorToken,
        body: { deploymentStatus: "FAILED" },
      }),
    );
    expect(await usageOf(s.t, 0, "mem")).toMatchObject({ usage: 3, pending: 0 });
    expect(
      await expectOk(call("GET", `/v1/subscriptions/${mem.id}/`, { token: s.t.partnerKey })),
    ).toMatchObject({
      end_reason: "failed",
    });
  });

  it("a cancelled subscription takes the vendor's UNDEPLOYED, and nothing that would show it live", async () => {
    const s = await syndicated(() => new Response(null, { status: 204 }));
    const id = await subscriptionOf(s, (await accepted(s)).headers.get("location") as string);
    const patch = (body: unknown) => call("PATCH", `/api/subscription/${id}`, { token: s.vendorToken, body });
    await expectOk(patch({ deploymentStatus: "DEPLOYED" }));
    await expectOk(call("DELETE", `/v1/subscriptions/${id}/`, { token: s.t.partnerKey }));
    expect((await patch({ deploymentStatus: "DEPLOYED", endUserInstructions: "resurrected" })).status).toBe(
      409,
    );
    expect((await patch({ deploymentStatus: "STOPPED" })).status).toBe(409);
    const undeployed = await expectOk(patch({ deploymentStatus: "UNDEPLOYED" }));
    expect(undeployed.deploymentStatus).toBe("UNDEPLOYED");
    expect((await patch({ deploymentStatus: "DEPLOYED" })).status).toBe(409);
  });
});

describe("the vendor deadline", () => {
  it("a purchase the vendor never reports on is undone after 7 days by the cron", async () => {
    const s = await syndicated(() => new Response(null, { status: 204 }));
    const location = (await accepted(s, 4)).headers.get("location") as string;
    const id = await subscriptionOf(s, location);
    await worker.scheduled(createScheduledController({ scheduledTime: Date.now() + 6 * 86_400_000 }), env);
    expect((await call("GET", location, { token: s.t.partnerKey })).status).toBe(202);
    await worker.scheduled(createScheduledController({ scheduledTime: Date.now() + 8 * 86_400_000 }), env);
    const failed = await call("GET", location, { token: s.t.partnerKey });
    expect(failed.status).toBe(424);
    expect(failed.body.detail).toMatch(/7 days/);
    expect(await usageOf(s.t, 0, s.product)).toEqual({ usage: 0, limit: 10, pending: 0 });
    expect(await expectOk(call("GET", `/v1/subscriptions/${id}/`, { token: s.t.partnerKey }))).toMatchObject({
      end_reason: "failed",
    });
  });
});

describe("retries", () => {
  it("an endpoint failing three times then answering 204 gets the event exactly once, on schedule", async () => {
    let calls = 0;
    const s = await syndicated(() =>
      ++calls <= 3 ? new Response("nope", { status: 500 }) : new Response(null, { status: 204 }),
    );
    await subscriptionOf(s, (await accepted(s)).headers.get("location") as string);
    const [first] = await deliveries(s);
    if (!first) throw new Error("no delivery");
    await eventually(
      async () => ((await findDelivery(env, first.id, null))?.attempts ?? 0) >= 1 || undefined,
      "attempt 1",
    );
    for (let i = 0; i < 10; i++) {
      const row = await findDelivery(env, first.id, null);
      if (row?.status !== "pending") break;
      const due = new Date(Date.parse(row.nextAttemptAt ?? new Date().toISOString()));
      await attemptDelivery(env, { deliveryId: first.id }, due, () => 0.5);
    }
    const detail = await expectOk(
      call("GET", `/v1/webhooks/deliveries/${first.id}`, { token: s.vendorToken }),
    );
    expect(detail.status).toBe("delivered");
    expect(detail.attempts.map((a: { status: number }) => a.status)).toEqual([500, 500, 500, 204]);
    const gaps = detail.attempts
      .slice(1)
      .map((a: { at: string }, i: number) => (Date.parse(a.at) - Date.parse(detail.attempts[i].at)) / 1000);
    expect(gaps[0]).toBeGreaterThanOrEqual(RETRY_SCHEDULE[0]! * 0.8);
    expect(gaps[0]).toBeLessThanOrEqual(RETRY_SCHEDULE[0]! * 1.2);
    expect(gaps.slice(1)).toEqual([RETRY_SCHEDULE[1], RETRY_SCHEDULE[2]]);
    const ids = new Set(
      (received.get(s.host) ?? [])
        .filter((r) => r.body.includes('"CREATED"'))
        .map((r) => r.headers["webhook-id"]),
    );
    expect(ids).toEqual(new Set([first.id]));
  });

  it("takes a redirect as the endpoint's answer, not a delivery: not followed, tried again", async () => {
    // Followed, a 302 would turn into a bodiless GET at the new place, whose 204 counted as delivered.
    const s = await syndicated((request) =>
      request.redirect === "manual"
        ? new Response(null, { status: 302, headers: { location: "https://elsewhere.example/hooks" } })
        : new Response(null, { status: 204 }),
    );
    const row = await firstAttempt(s);
    expect(row).toMatchObject({ status: "pending", lastStatus: 302 });
    expect(row.nextAttemptAt).not.toBeNull();
  });

  it("honours Retry-After on 429", async () => {
    let calls = 0;
    const s = await syndicated(() =>
      ++calls === 1
        ? new Response(null, { status: 429, headers: { "retry-after": "120" } })
        : new Response(null, { status: 204 }),
    );
    const row = await firstAttempt(s);
    expect(row.lastStatus).toBe(429);
    const attempts = (
      await expectOk(call("GET", `/v1/webhooks/deliveries/${row.id}`, { token: s.vendorToken }))
    ).attempts;
    expect(Date.parse(row.nextAttemptAt ?? "") - Date.parse(attempts[0].at)).toBe(120_000);
  });

  it("retries past the schedule at the cap until the retention horizon, then dead; a redelivery starts both over", async () => {
    let healthy = false;
    const s = await syndicated(() => new Response(null, { status: healthy ? 204 : 503 }));
    await subscriptionOf(s, (await accepted(s)).headers.get("location") as string);
    const [first] = await deliveries(s);
    if (!first) throw new Error("no delivery");
    await eventually(
      async () => ((await findDelivery(env, first.id, null))?.attempts ?? 0) >= 1 || undefined,
      "attempt 1",
    );
    for (let i = 0; i < 200; i++) {
      const row = await findDelivery(env, first.id, null);
      if (row?.status !== "pending") break;
      await attemptDelivery(
        env,
        { deliveryId: first.id },
        new Date(row.nextAttemptAt ?? Date.now()),
        () => 0.5,
      );
    }
    const dead = await findDelivery(env, first.id, null);
    expect(dead?.status).toBe("dead");
    const attempts = (
      await expectOk(call("GET", `/v1/webhooks/deliveries/${first.id}`, { token: s.vendorToken }))
    ).attempts as Array<{ at: string; status: number }>;
    expect(attempts).toHaveLength(dead?.attempts ?? 0);
    const times = attempts.map((a) => Date.parse(a.at));
    const gaps = times.slice(1).map((t, i) => (t - (times[i] ?? 0)) / 1000);
    // The first gap was jittered by the queue's own attempt; the others follow the schedule, then the cap.
    expect(gaps.slice(1, RETRY_SCHEDULE.length)).toEqual(RETRY_SCHEDULE.slice(1));
    expect(new Set(gaps.slice(RETRY_SCHEDULE.length))).toEqual(new Set([MAX_DELAY_SECONDS]));
    const horizon = Date.parse(dead?.createdAt ?? "") + 30 * 86_400_000;
    const last = times.at(-1) ?? 0;
    expect(last).toBeLessThanOrEqual(horizon);
    expect(last + MAX_DELAY_SECONDS * 1000).toBeGreaterThan(horizon);
    expect(attempts.length).toBeGreaterThan(60);
    expect((await deliveries(s, "?status=dead")).map((d) => d.id)).toContain(first.id);

    // A day past its horizon, a redelivery that fails is retried on the schedule from its start.
    vi.useFakeTimers({ toFake: ["Date"] });
    try {
      vi.setSystemTime(horizon + 86_400_000);
      const again = await call("POST", `/v1/webhooks/deliveries/${first.id}/redeliver`, {
        token: s.vendorToken,
      });
      expect(again.status).toBe(202);
      expect(again.body.status).toBe("pending");
      await attemptDelivery(env, { deliveryId: first.id, due: again.body.next_attempt_at }, new Date());
      const retried = await eventually(async () => {
        const d = await findDelivery(env, first.id, null);
        return d && d.attempts > attempts.length ? d : undefined;
      }, "the redelivery's first attempt");
      expect(retried.status).toBe("pending");
      const [lastTry] = (
        await expectOk(call("GET", `/v1/webhooks/deliveries/${first.id}`, { token: s.vendorToken }))
      ).attempts.slice(-1);
      const wait = (Date.parse(retried.nextAttemptAt ?? "") - Date.parse(lastTry.at)) / 1000;
      expect(wait).toBeGreaterThanOrEqual(RETRY_SCHEDULE[0]! * 0.8);
      expect(wait).toBeLessThanOrEqual(RETRY_SCHEDULE[0]! * 1.2);
    } finally {
      vi.useRealTimers();
    }

    healthy = true;
    const due = (await findDelivery(env, first.id, null))?.nextAttemptAt ?? "";
    await attemptDelivery(env, { deliveryId: first.id, due }, new Date(due), () => 0.5);
    const delivered = await eventually(async () => {
      const d = await findDelivery(env, first.id, null);
      return d?.status === "delivered" ? d : undefined;
    }, "redelivery");
    expect(delivered.id).toBe(first.id);
    const pendingAgain = await call("POST", `/v1/webhooks/deliveries/${first.id}/redeliver`, {
      token: s.vendorToken,
    });
    expect(pendingAgain.status).toBe(202);
  });

  it("an endpoint that comes back gets its backlog oldest first per subscription, and the backlog is counted per endpoint", async () => {
    let healthy = false;
    const got: number[] = [];
    const s = await syndicated(async (request) => {
      if (!healthy) return new Response(null, { status: 503 });
      got.push(((await request.json()) as { sequence: number }).sequence);
      return new Response(null, { status: 204 });
    });
    const location = (await accepted(s)).headers.get("location") as string;
    const id = await subscriptionOf(s, location);
    // Three more events of the same subscription while its endpoint is down.
    await expectOk(
      call("PATCH", `/api/subscription/${id}`, {
        token: s.vendorToken,
        body: { endUserInstructions: "Sign in with your email" },
      }),
    );
    await expectOk(call("POST", `/v1/subscriptions/${id}/action/?do=auto_renew`, { token: s.t.partnerKey }));
    await expectOk(
      call("PATCH", `/api/subscription/${id}`, {
        token: s.vendorToken,
        body: { deploymentStatus: "DEPLOYED" },
      }),
    );
    const pending = await eventually(async () => {
      const rows = await Promise.all((await deliveries(s)).map((d) => findDelivery(env, d.id, null)));
      // Each has met the queue once: the oldest was attempted, the others wait behind it.
      return rows.length === 4 && rows.every((d) => d?.nextAttemptAt) ? rows : undefined;
    }, "four events, each met once");
    const bySequence = pending.flatMap((d) => (d ? [d] : [])).sort((a, b) => a.sequence - b.sequence);
    expect(bySequence.map((d) => d.sequence)).toEqual([1, 2, 3, 4]);
    expect(bySequence.map((d) => d.attempts)).toEqual([1, 0, 0, 0]);

    const backlog = await expectOk(
      call("GET", "/v1/webhooks/deliveries?status=pending", { token: s.vendorToken }),
    );
    expect(backlog.meta.backlog).toEqual([
      { endpoint: `https://${s.host}/hooks`, pending: 4, oldest_created_at: bySequence[0]?.createdAt },
    ]);
    const operatorView = await expectOk(
      call("GET", "/v1/webhooks/deliveries?status=pending&limit=1", { token: s.t.operator }),
    );
    expect(operatorView.meta.backlog).toContainEqual({
      endpoint: `https://${s.host}/hooks`,
      pending: 4,
      oldest_created_at: bySequence[0]?.createdAt,
    });
    const everything = await expectOk(call("GET", "/v1/webhooks/deliveries", { token: s.vendorToken }));
    expect(everything.meta.backlog).toBeUndefined();

    // Back up. Each round offers every pending delivery its next attempt, newest first, a day
    // later each time: whatever comes first, the endpoint gets them in order.
    healthy = true;
    let at = Date.now();
    for (let round = 0; round < 10; round++) {
      at += 86_400_000;
      const rows = await Promise.all(bySequence.map((d) => findDelivery(env, d.id, null)));
      const left = rows.filter((d) => d?.status === "pending").reverse();
      if (left.length === 0) break;
      for (const d of left) {
        if (d)
          await attemptDelivery(env, { deliveryId: d.id, due: d.nextAttemptAt }, new Date(at), () => 0.5);
      }
    }
    expect(got).toEqual([1, 2, 3, 4]);
    for (const d of bySequence) {
      expect((await findDelivery(env, d.id, null))?.status).toBe("delivered");
    }
    const drained = await expectOk(
      call("GET", "/v1/webhooks/deliveries?status=pending", { token: s.vendorToken }),
    );
    expect(drained).toEqual({
      objects: [],
      meta: { limit: 50, next_cursor: null, total_count: 0, backlog: [] },
    });
  });

  it("waits with a fresh message, never a retry, so a message at the queue's retry bound still leads on", async () => {
    const s = await syndicated(() => new Response(null, { status: 503 }));
    await subscriptionOf(s, (await accepted(s)).headers.get("location") as string);
    const [first] = await deliveries(s);
    if (!first) throw new Error("no delivery");
    const row = await eventually(async () => {
      const d = await findDelivery(env, first.id, null);
      return d && d.attempts >= 1 ? d : undefined;
    }, "attempt 1");
    await env.DB.prepare("UPDATE webhook_deliveries SET next_attempt_at = ? WHERE id = ?")
      .bind(new Date(Date.now() - 1000).toISOString(), first.id)
      .run();
    const due = (await findDelivery(env, first.id, null))?.nextAttemptAt;
    const sent = vi.spyOn(env.WEBHOOKS, "send");
    try {
      const batch = createMessageBatch<WebhookMessage>("stratus-webhooks", [
        { id: "at-the-bound", timestamp: new Date(), attempts: 100, body: { deliveryId: first.id, due } },
      ]);
      const ctx = createExecutionContext();
      await worker.queue(batch, env);
      const result = await getQueueResult(batch, ctx);
      expect(result.retryMessages).toEqual([]);
      expect(result.explicitAcks).toEqual(["at-the-bound"]);
      const after = await findDelivery(env, first.id, null);
      expect(after?.attempts).toBe(row.attempts + 1);
      expect(sent).toHaveBeenCalledWith(
        { deliveryId: first.id, due: after?.nextAttemptAt },
        { delaySeconds: expect.any(Number) },
      );
    } finally {
      sent.mockRestore();
    }
  });

  it("a copy of a message that no longer owns its delivery is dropped; the cron re-sends a lost one", async () => {
    let calls = 0;
    const s = await syndicated(() => new Response(null, { status: ++calls === 1 ? 503 : 204 }));
    await subscriptionOf(s, (await accepted(s)).headers.get("location") as string);
    const [first] = await deliveries(s);
    if (!first) throw new Error("no delivery");
    const failed = await eventually(async () => {
      const d = await findDelivery(env, first.id, null);
      return d && d.attempts >= 1 ? d : undefined;
    }, "attempt 1");
    // A stale copy (it was sent for another attempt time), even once the delivery is due: dropped.
    const dueAt = new Date(Date.parse(failed.nextAttemptAt ?? "") + 1000);
    await env.DB.prepare("UPDATE webhook_deliveries SET locked_until = ? WHERE id = ?")
      .bind(new Date(dueAt.getTime() + 60_000).toISOString(), first.id)
      .run();
    expect(
      await attemptDelivery(env, { deliveryId: first.id, due: "2000-01-01T00:00:00.000Z" }, dueAt),
    ).toEqual({
      outcome: "skipped",
    });
    // Its owner, meanwhile lost: the row says it was due twenty minutes ago and nothing holds it.
    await env.DB.prepare(
      "UPDATE webhook_deliveries SET locked_until = NULL, next_attempt_at = ? WHERE id = ?",
    )
      .bind(new Date(Date.now() - 20 * 60_000).toISOString(), first.id)
      .run();
    await worker.scheduled(createScheduledController({ scheduledTime: Date.now() }), env);
    const delivered = await eventually(async () => {
      const d = await findDelivery(env, first.id, null);
      return d?.status === "delivered" ? d : undefined;
    }, "the re-sent message's attempt");
    expect(delivered.attempts).toBe(2);
  });

  it("the cron sends a delivery whose first message never arrived: never attempted, it was due when made", async () => {
    const s = await syndicated(() => new Response(null, { status: 204 }));
    // The first message is lost (here: never sent), so nothing ever attempts the delivery.
    const sent = vi.spyOn(env.WEBHOOKS, "send").mockImplementation(async () => undefined as never);
    try {
      await subscriptionOf(s, (await accepted(s)).headers.get("location") as string);
      await eventually(async () => (sent.mock.calls.length > 0 ? true : undefined), "the lost message");
    } finally {
      sent.mockRestore();
    }
    const [created] = await deliveries(s);
    if (!created) throw new Error("no delivery");
    expect(await findDelivery(env, created.id, null)).toMatchObject({ attempts: 0, nextAttemptAt: null });
    // Made twenty minutes ago, as far as the cron can tell.
    await env.DB.prepare("UPDATE webhook_deliveries SET created_at = ? WHERE id = ?")
      .bind(new Date(Date.now() - 20 * 60_000).toISOString(), created.id)
      .run();
    await worker.scheduled(createScheduledController({ scheduledTime: Date.now() }), env);
    const delivered = await eventually(async () => {
      const d = await findDelivery(env, created.id, null);
      return d?.status === "delivered" ? d : undefined;
    }, "the re-sent first message's attempt");
    expect(delivered.attempts).toBe(1);
    expect((received.get(s.host) ?? []).map((r) => JSON.parse(r.body).type)).toEqual(["CREATED"]);
  });

  it("signs with both secrets while a rotation is fresh", async () => {
    const s = await syndicated(() => new Response(null, { status: 204 }));
    const rotated = await expectOk(
      call("POST", `/v1/products/${s.product}/signing-secret`, { token: s.vendorToken }),
    );
    expect(rotated.signing_secret).not.toBe(s.secret);
    await subscriptionOf(s, (await accepted(s)).headers.get("location") as string);
    const request = await eventually(async () => received.get(s.host)?.[0], "a delivery");
    expect(request.headers["webhook-signature"]?.split(" ")).toHaveLength(2);
    for (const secret of [s.secret, rotated.signing_secret]) {
      expect(new Webhook(secret).verify(request.body, request.headers)).toMatchObject({ type: "CREATED" });
    }
  });
});

describe("the vendor's report reaches the partner", () => {
  const read = (s: Syndicated, id: string) =>
    expectOk(call("GET", `/v1/subscriptions/${id}/`, { token: s.t.partnerKey }));
  const listed = async (s: Syndicated, status: string) =>
    (await expectOk(call("GET", `/v1/subscriptions/?status=${status}`, { token: s.t.partnerKey })))
      .objects as Array<Record<string, unknown>>;

  it("a pending subscription reads inactive with the report so far; deployed, active with the vendor's", async () => {
    const s = await syndicated(() => new Response(null, { status: 204 }));
    const id = await subscriptionOf(s, (await accepted(s)).headers.get("location") as string);
    const waiting = {
      status: "inactive",
      deployment_status: "PENDING",
      syndicated_endpoints: [],
      end_user_instructions: null,
    };
    expect(await read(s, id)).toMatchObject(waiting);
    expect(await listed(s, "inactive")).toEqual([expect.objectContaining({ id, ...waiting })]);
    expect(await listed(s, "notexpired")).toEqual([expect.objectContaining({ id, ...waiting })]);
    expect(await listed(s, "active")).toEqual([]);
    expect(await listed(s, "expired")).toEqual([]);

    // Its term starts when it is deployed: there is nothing to extend yet.
    const extend = await call("POST", `/v1/subscriptions/${id}/action/?do=extend`, {
      token: s.t.partnerKey,
      body: {},
    });
    expect(extend.status).toBe(409);
    expect(extend.headers.get("content-type")).toBe("application/problem+json");
    expect((await listed(s, "all")).map((r) => r.id)).toEqual([id]);

    await expectOk(
      call("PATCH", `/api/subscription/${id}`, {
        token: s.vendorToken,
        body: {
          deploymentStatus: "DEPLOYED",
          syndicatedEndpoints: ["https://crm.example.org/acme"],
          endUserInstructions: "Sign in with your email",
        },
      }),
    );
    const deployed = {
      status: "active",
      deployment_status: "DEPLOYED",
      syndicated_endpoints: ["https://crm.example.org/acme"],
      end_user_instructions: "Sign in with your email",
    };
    expect(await read(s, id)).toMatchObject(deployed);
    expect(await listed(s, "active")).toEqual([expect.objectContaining({ id, ...deployed })]);
    expect(await listed(s, "inactive")).toEqual([]);

    // An extension continues the deployment: the customer reaches it where and as before (its
    // term starts when this one ends).
    const { status: _, ...deployment } = deployed;
    const extension = await expectOk(
      call("POST", `/v1/subscriptions/${id}/action/?do=extend`, { token: s.t.partnerKey, body: {} }),
    );
    expect(extension).toMatchObject({ ...deployment, status: "inactive", extends: id });
    expect(await read(s, extension.id)).toMatchObject(deployment);

    const builtin = await expectOk(
      call("POST", "/v1/subscriptions/", {
        token: s.t.partnerKey,
        body: { objects: [{ customer: s.t.customers[0], resource: "cpu", amount: 1, period: "1 week" }] },
      }),
      201,
    );
    const none = { deployment_status: null, syndicated_endpoints: null, end_user_instructions: null };
    expect(builtin.objects[0]).toMatchObject(none);
    expect(await read(s, builtin.objects[0].id)).toMatchObject(none);

    const doc = await expectOk(call("GET", "/openapi.json"));
    const ref: string =
      doc.paths["/v1/subscriptions/{id}"].get.responses["200"].content["application/json"].schema.$ref;
    const props = doc.components.schemas[ref.replace("#/components/schemas/", "")].properties;
    for (const field of ["deployment_status", "syndicated_endpoints", "end_user_instructions"]) {
      expect(JSON.stringify(props[field]), field).toContain('"null"');
    }
  });

  it("deployed three days late, a purchase starts and ends three days late, is charged once for the term it gets, and renews from its new end", async () => {
    const s = await syndicated(() => new Response(null, { status: 204 }));
    const r = await call("POST", "/v1/subscriptions/", {
      token: s.t.partnerKey,
      body: {
        objects: [
          { customer: s.t.customers[0], resource: s.product, amount: 2, period: "2 weeks", auto_renew: true },
        ],
      },
    });
    const location = r.headers.get("location") as string;
    const id = await subscriptionOf(s, location);
    const asBought = await read(s, id);
    const DAY = 86_400_000;
    const deployedAt = Date.parse(asBought.start_time) + 3 * DAY;
    // While it waits, no renewal finds it, however late.
    expect((await dueBy(new Date(deployedAt + 365 * DAY))).map((d) => d.id)).not.toContain(id);

    vi.useFakeTimers({ toFake: ["Date"] });
    try {
      vi.setSystemTime(deployedAt);
      await expectOk(
        call("PATCH", `/api/subscription/${id}`, {
          token: s.vendorToken,
          body: { deploymentStatus: "DEPLOYED" },
        }),
      );
      const done = await call("GET", location, { token: s.t.partnerKey });
      expect(done.status).toBe(201);
      expect(done.body.objects[0]).toMatchObject({ id, status: "active" });
    } finally {
      vi.useRealTimers();
    }
    const term = {
      start_time: new Date(deployedAt).toISOString(),
      end_time: new Date(Date.parse(asBought.end_time) + 3 * DAY).toISOString(),
      period: "2 weeks",
      // The same length as bought: the same price.
      price: asBought.price,
    };
    expect(await read(s, id)).toMatchObject(term);

    const charges = await expectOk(call("GET", `/v1/charges?subscription=${id}`, { token: s.t.partnerKey }));
    expect(charges.objects).toEqual([
      expect.objectContaining({
        id: `purchase:${id}`,
        amount: term.price,
        period_start: term.start_time,
        period_end: term.end_time,
      }),
    ]);
    const order = await expectOk(call("GET", `/v1/orders/${asBought.order}`, { token: s.t.partnerKey }));
    expect(order).toMatchObject({
      state: "completed",
      total_price: term.price,
      lines: [{ subscription: id, price: term.price }],
    });
    expect(await usageOf(s.t, 0, s.product)).toMatchObject({ usage: 2, pending: 0 });
    await expectBooksBalance(s.t);

    // Due where its term now ends, not where it would have.
    const dueAt = async (at: number) => (await dueBy(new Date(at))).map((d) => d.id);
    expect(await dueAt(Date.parse(asBought.end_time) + 3_600_000)).not.toContain(id);
    expect(await dueAt(Date.parse(term.end_time))).toContain(id);
    expect(await renewOrExpire(env, id, new Date(Date.parse(term.end_time) - 60_000))).toBe("renewed");
    const renewed = await read(s, id);
    expect(renewed.descendants).toHaveLength(1);
    expect(await read(s, renewed.descendants[0])).toMatchObject({
      start_time: term.end_time,
      deployment_status: "DEPLOYED",
      extends: id,
    });
    expect(await usageOf(s.t, 0, s.product)).toMatchObject({ usage: 2, pending: 0 });
    await expectBooksBalance(s.t);
  });
});

describe("a vendor's order", () => {
  it("shows the vendor its own lines and their total, never the order's other products", async () => {
    const a = await syndicated(() => new Response(null, { status: 204 }));
    const b = await syndicated(() => new Response(null, { status: 204 }), a.t);
    const r = await call("POST", "/v1/subscriptions/", {
      token: a.t.partnerKey,
      body: {
        objects: [
          { customer: a.t.customers[0], resource: a.product, amount: 2, period: "1 month" },
          { customer: a.t.customers[0], resource: "cpu", amount: 3, period: "1 month" },
          { customer: a.t.customers[0], resource: b.product, amount: 1, period: "1 month" },
        ],
      },
    });
    expect(r.status).toBe(202);
    const mine = await subscriptionOf(a, r.headers.get("location") as string);
    const theirs = await eventually(
      async () => (await deliveries(b)).find((d) => d.type === "CREATED")?.subscription,
      "vendor B's CREATED",
    );
    const orderId = (
      (await expectOk(call("GET", `/api/subscription/${mine}`, { token: a.vendorToken }))).orders[0]
        .url as string
    ).split("/")[1];
    const whole = await expectOk(call("GET", `/v1/orders/${orderId}`, { token: a.t.partnerKey }));
    expect(whole.lines).toHaveLength(3);
    const priceOf = (id: string) =>
      Number(whole.lines.find((l: { subscription: string }) => l.subscription === id).price);

    const seenByA = await expectOk(call("GET", `/api/order/${orderId}`, { token: a.vendorToken }));
    expect(seenByA.lines).toEqual([
      expect.objectContaining({ product: { url: `product/${a.product}` }, quantity: 2 }),
    ]);
    expect(seenByA.totalPrice).toBe(priceOf(mine));
    expect(seenByA.subscription).toEqual({ url: `subscription/${mine}` });

    const seenByB = await expectOk(call("GET", `/api/order/${orderId}`, { token: b.vendorToken }));
    expect(seenByB.lines).toEqual([
      expect.objectContaining({ product: { url: `product/${b.product}` }, quantity: 1 }),
    ]);
    expect(seenByB.totalPrice).toBe(priceOf(theirs));
    expect(seenByA.totalPrice + seenByB.totalPrice).toBeLessThan(Number(whole.total_price));
  });
});

describe("isolation and bad input", () => {
  it("a vendor sees only its own subscriptions, orders, users and deliveries", async () => {
    const a = await syndicated(() => new Response(null, { status: 204 }));
    const b = await syndicated(() => new Response(null, { status: 204 }));
    const id = await subscriptionOf(a, (await accepted(a)).headers.get("location") as string);
    const sub = await expectOk(call("GET", `/api/subscription/${id}`, { token: a.vendorToken }));
    const orderId = (sub.orders[0].url as string).split("/")[1];
    for (const [method, path, body] of [
      ["GET", `/api/subscription/${id}`, undefined],
      ["PATCH", `/api/subscription/${id}`, { deploymentStatus: "DEPLOYED" }],
      ["GET", `/api/order/${orderId}`, undefined],
      ["GET", `/api/user/${a.t.customers[0]}`, undefined],
    ] as const) {
      const r = await call(method, path, { token: b.vendorToken, ...(body ? { body } : {}) });
      expect(r.status, `${method} ${path}`).toBe(404);
    }
    expect(await deliveries(b)).toEqual([]);
    const [mine] = await deliveries(a);
    expect((await call("GET", `/v1/webhooks/deliveries/${mine?.id}`, { token: b.vendorToken })).status).toBe(
      404,
    );
    expect(
      (await call("POST", `/v1/products/${a.product}/signing-secret`, { token: b.vendorToken })).status,
    ).toBe(404);
    expect((await call("GET", `/api/subscription/${id}`)).status).toBe(401);
    expect((await call("GET", `/api/subscription/${id}`, { token: a.t.partnerKey })).status).toBe(403);
    const still = await expectOk(call("GET", `/api/subscription/${id}`, { token: a.vendorToken }));
    expect(still.deploymentStatus).toBe("PENDING");
  });

  it.each([
    ["an unknown field", { deploymentStatus: "DEPLOYED", price: 0 }],
    ["an unknown status", { deploymentStatus: "READY" }],
    ["a transition PENDING cannot make", { deploymentStatus: "STOPPED" }],
    ["endpoints that are not URLs", { syndicatedEndpoints: ["not a url"] }],
    ["endpoints not a list", { syndicatedEndpoints: "http://x.example" }],
    ["instructions not text", { endUserInstructions: 5 }],
    // Stored, a lone surrogate would make strict JSON readers fail on every answer that shows it.
    ["instructions with a lone surrogate", { endUserInstructions: "a\ud800b" }],
    ["an endpoint with a trailing newline", { syndicatedEndpoints: ["http://x.example\n"] }],
    ["an endpoint with a NUL", { syndicatedEndpoints: ["http://x.example/\u0000"] }],
    ["an endpoint with a line separator", { syndicatedEndpoints: ["http://x.example/\u2028"] }],
    ["nothing", {}],
  ])("a PATCH with %s answers 400 and changes nothing", async (_, body) => {
    const s = await syndicated(() => new Response(null, { status: 204 }));
    const id = await subscriptionOf(s, (await accepted(s)).headers.get("location") as string);
    const r = await call("PATCH", `/api/subscription/${id}`, { token: s.vendorToken, body });
    expect(r.status).toBe(400);
    expect(r.headers.get("content-type")).toBe("application/problem+json");
    const after = await expectOk(call("GET", `/api/subscription/${id}`, { token: s.vendorToken }));
    expect(after).toMatchObject({
      deploymentStatus: "PENDING",
      syndicatedEndpoints: [],
      endUserInstructions: null,
    });
  });

  it("refuses an endpoint with credentials in it, which fetch would drop: every event would fail", async () => {
    // workerd sends no Authorization for a URL's user:password (it drops them), so the endpoint
    // would answer 401 to each attempt until the event died. Refused where it is set instead.
    const s = await syndicated(() => new Response(null, { status: 204 }));
    const endpoint = "https://crm:hunter2@hooks.vendor.example/events";
    const put = await call("PUT", `/v1/products/${s.product}`, {
      token: s.t.operator,
      body: syndicatedProductBody(s.product, s.vendorId, endpoint),
    });
    expect(put.status).toBe(400);
    expect(put.body.errors.map((e: { point: string }) => e.point)).toEqual(["/endpoint"]);
    for (const token of [s.t.operator, s.vendorToken]) {
      const r = await call("PUT", `/v1/products/${s.product}/endpoint`, { token, body: { endpoint } });
      expect(r.status).toBe(400);
      expect(r.body.errors.map((e: { point: string }) => e.point)).toEqual(["/endpoint"]);
    }
    // The app's own URLs, shown to the customer and never fetched, are the vendor's to word.
    const id = await subscriptionOf(s, (await accepted(s)).headers.get("location") as string);
    const patched = await call("PATCH", `/api/subscription/${id}`, {
      token: s.vendorToken,
      body: { syndicatedEndpoints: ["https://demo:demo@app.vendor.example"] },
    });
    expect(patched.status).toBe(200);
  });

  it("refuses a syndicated product without vendor or endpoint", async () => {
    const t = await tenant({ customers: 0 });
    await expectOk(
      call("PUT", "/v1/resources/stratus.x", { token: t.operator, body: { service: "stratus" } }),
    );
    const r = await call("PUT", "/v1/products/x", {
      token: t.operator,
      body: {
        name: "x",
        kind: "license",
        unit: "seat",
        unit_price: "1.00",
        currency: "EUR",
        quota_resource: "stratus.x",
        delivery: "syndicated",
      },
    });
    expect(r.status).toBe(400);
    expect(r.body.errors.map((e: { point: string }) => e.point)).toEqual(["/vendor", "/endpoint"]);
  });
});
