import { createScheduledController } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { attemptDelivery } from "../../src/app/webhooks";
import { findDelivery } from "../../src/db/webhooks";
import { RETRY_SCHEDULE } from "../../src/domain/webhooks";
import worker from "../../src/index";
import { call, expectOk, type Reply, type Tenant, tenant, unique, usageOf, withCatalog } from "../helpers";

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

/** A tenant, a vendor with a token, and a syndicated product of it whose endpoint is `host`. */
async function syndicated(receiver: Receiver): Promise<Syndicated> {
  const t = await tenant({ customers: 1 });
  await withCatalog(t);
  const host = `${unique("vendor")}.example`;
  receivers.set(host, receiver);
  const vendor = await expectOk(
    call("POST", "/v1/vendors", { token: t.operator, body: { name: "CRM Inc" } }),
    201,
  );
  const token = await expectOk(
    call("POST", `/v1/vendors/${vendor.id}/tokens`, { token: t.operator, body: {} }),
    201,
  );
  const product = unique("crm");
  await expectOk(
    call("PUT", `/v1/resources/stratus.${product}`, { token: t.operator, body: { service: "stratus" } }),
  );
  const created = await expectOk(
    call("PUT", `/v1/products/${product}`, {
      token: t.operator,
      body: {
        name: "CRM seats",
        kind: "license",
        unit: "seat",
        unit_price: "0.10",
        currency: "EUR",
        quota_resource: `stratus.${product}`,
        delivery: "syndicated",
        vendor: vendor.id,
        endpoint: `https://${host}/hooks`,
      },
    }),
  );
  expect(created.signing_secret).toMatch(/^whsec_/);
  await expectOk(
    call("PUT", `/v1/customers/${t.customers[0]}/quotas`, {
      token: t.operator,
      body: { resource: `stratus.${product}`, limit: 10 },
    }),
  );
  return { t, host, product, secret: created.signing_secret, vendorId: vendor.id, vendorToken: token.token };
}

const accepted = async (s: Syndicated, amount = 2): Promise<Reply> =>
  call("POST", "/v1/subscriptions/", {
    token: s.t.partnerKey,
    body: { objects: [{ customer: s.t.customers[0], resource: s.product, amount, period: "1 month" }] },
  });

async function eventually<T>(probe: () => Promise<T | undefined>, what: string): Promise<T> {
  for (let i = 0; i < 150; i++) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

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
      "user-agent": expect.stringMatching(/^stratus-webhooks\//),
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
    const user = await expectOk(call("GET", `/api/user/${s.t.customers[0]}`, { token: s.vendorToken }));
    expect(user).toMatchObject({
      id: s.t.customers[0],
      self: `user/${s.t.customers[0]}`,
      name: "customer 0",
    });
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
      await attemptDelivery(env, first.id, due, () => 0.5);
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

  it("honours Retry-After on 429", async () => {
    let calls = 0;
    const s = await syndicated(() =>
      ++calls === 1
        ? new Response(null, { status: 429, headers: { "retry-after": "120" } })
        : new Response(null, { status: 204 }),
    );
    await subscriptionOf(s, (await accepted(s)).headers.get("location") as string);
    const [first] = await deliveries(s);
    const row = await eventually(async () => {
      const d = await findDelivery(env, first?.id ?? "", null);
      return d && d.attempts >= 1 ? d : undefined;
    }, "the 429");
    expect(row.lastStatus).toBe(429);
    const attempts = (
      await expectOk(call("GET", `/v1/webhooks/deliveries/${row.id}`, { token: s.vendorToken }))
    ).attempts;
    expect(Date.parse(row.nextAttemptAt ?? "") - Date.parse(attempts[0].at)).toBe(120_000);
  });

  it("exhausted retries leave the delivery dead, and a redelivery delivers it", async () => {
    let healthy = false;
    const s = await syndicated(() => new Response(null, { status: healthy ? 204 : 503 }));
    await subscriptionOf(s, (await accepted(s)).headers.get("location") as string);
    const [first] = await deliveries(s);
    if (!first) throw new Error("no delivery");
    await eventually(
      async () => ((await findDelivery(env, first.id, null))?.attempts ?? 0) >= 1 || undefined,
      "attempt 1",
    );
    for (let i = 0; i < 30; i++) {
      const row = await findDelivery(env, first.id, null);
      if (row?.status !== "pending") break;
      await attemptDelivery(env, first.id, new Date(row.nextAttemptAt ?? Date.now()), () => 0.5);
    }
    const dead = await findDelivery(env, first.id, null);
    expect(dead).toMatchObject({ status: "dead", attempts: RETRY_SCHEDULE.length + 1 });
    const spanned = Date.parse(dead?.createdAt ?? "");
    const lastAttempt = (
      await expectOk(call("GET", `/v1/webhooks/deliveries/${first.id}`, { token: s.vendorToken }))
    ).attempts.at(-1).at;
    expect(Date.parse(lastAttempt) - spanned).toBeGreaterThan(3 * 86_400_000);
    expect((await deliveries(s, "?status=dead")).map((d) => d.id)).toContain(first.id);

    healthy = true;
    const again = await call("POST", `/v1/webhooks/deliveries/${first.id}/redeliver`, {
      token: s.vendorToken,
    });
    expect(again.status).toBe(202);
    expect(again.body.status).toBe("pending");
    await attemptDelivery(env, first.id, new Date(), () => 0.5);
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
