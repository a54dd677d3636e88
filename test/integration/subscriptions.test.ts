import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { issueCommission } from "../../src/objects/commission-issue";
import {
  type SubscriptionObject,
  subscriptionObject,
  subscriptionShard,
} from "../../src/objects/subscription-object";
import { expectBooksBalance } from "../books";
import {
  call,
  expectOk,
  failingD1,
  shardAlarmOf,
  type Tenant,
  tenant,
  tenantWithCatalog,
  unique,
  usageOf,
} from "../helpers";

/** The subscriptions API through the Worker: SubscriptionObjects, the D1 read model and quota. */

const setup = (limit = 1000) => tenantWithCatalog(2, limit);

const buy = (t: Tenant, objects: unknown[], headers: Record<string, string> = {}) =>
  call("POST", "/v1/subscriptions/", { token: t.partnerKey, body: { objects }, headers });

const future = (days: number) => {
  const d = new Date(Date.now() + days * 86_400_000);
  d.setUTCHours(12, 0, 0, 0);
  return d;
};

describe("buying", () => {
  it("buys a period from now: starts now, ends at the next noon after the period, priced exactly", async () => {
    const t = await setup();
    const before = Date.now();
    const r = await buy(t, [{ customer: t.customers[0], resource: "cpu", amount: 4, period: "1 week" }]);
    expect(r.status).toBe(201);
    const [sub] = r.body.objects;
    expect(sub).toMatchObject({
      resource: "cpu",
      product: "cpu",
      customer: t.customers[0],
      amount: 4,
      period: "1 week",
      status: "active",
      auto_renew: false,
      currency: "EUR",
      remaining: null,
      descendants: [],
      subscribed_object: null,
      run_state: null,
      extends: null,
    });
    expect(sub.id).toBe(sub.uuid);
    const start = Date.parse(sub.start_time);
    const end = Date.parse(sub.end_time);
    expect(start).toBeGreaterThanOrEqual(before - 1000);
    expect(new Date(end).getUTCHours()).toBe(12);
    expect(end - start).toBeGreaterThanOrEqual(7 * 86_400_000);
    expect(end - start).toBeLessThan(8 * 86_400_000);
    const seconds = Math.floor(end / 1000) - Math.floor(start / 1000);
    const cents = Math.floor((4 * seconds * 2 + 1800) / 3600);
    expect(sub.price).toBe((cents / 100).toFixed(2));
    expect(r.body.meta).toMatchObject({ total_price: sub.price, currency: "EUR" });
    expect(r.body.meta.orders).toEqual([
      {
        id: sub.order,
        buyer: t.customers[0],
        lines: [
          { subscription: sub.id, product: "cpu", amount: 4, price: sub.price, charge: `purchase:${sub.id}` },
        ],
        total_price: sub.price,
        currency: "EUR",
        state: "completed",
        created_at: expect.any(String),
      },
    ]);
    expect(await usageOf(t, 0, "cpu")).toEqual({ usage: 4, limit: 1000, pending: 0 });
    const order = await expectOk(call("GET", `/v1/orders/${sub.order}`, { token: t.partnerKey }));
    expect(order.state).toBe("completed");
  });

  it("answers hdd as dssd", async () => {
    const t = await setup();
    const r = await buy(t, [{ customer: t.customers[0], resource: "hdd", amount: 10, period: "1 day" }]);
    expect(r.status).toBe(201);
    expect(r.body.objects[0].resource).toBe("dssd");
    const list = await expectOk(call("GET", "/v1/subscriptions/?resource=hdd", { token: t.partnerKey }));
    expect(list.objects.map((s: { id: string }) => s.id)).toEqual([r.body.objects[0].id]);
  });

  it("starts future purchases at the noon before and reports them inactive", async () => {
    const t = await setup();
    const start = future(10);
    start.setUTCHours(15, 30);
    const r = await buy(t, [
      {
        customer: t.customers[0],
        resource: "mem",
        amount: 1,
        start_time: start.toISOString(),
        period: "2 days",
      },
    ]);
    expect(r.status).toBe(201);
    const sub = r.body.objects[0];
    expect(sub.start_time).toBe(new Date(start.getTime() - 3.5 * 3_600_000).toISOString());
    expect(sub.end_time).toBe(new Date(start.getTime() + 2 * 86_400_000 + 20.5 * 3_600_000).toISOString());
    expect(sub.status).toBe("inactive");
  });

  it.each<[{ start_time?: boolean; end_time?: boolean; period?: boolean }, string[]]>([
    [{ start_time: true, end_time: true, period: true }, ["start_time", "end_time", "period"]],
    [{ start_time: true }, ["end_time", "period"]],
    [{}, ["end_time", "period"]],
  ])("rejects %o naming %o, buying nothing", async (given, fields) => {
    const t = await setup();
    const object: Record<string, unknown> = { customer: t.customers[0], resource: "dssd", amount: 1 };
    if (given.start_time) object.start_time = future(2).toISOString();
    if (given.end_time) object.end_time = future(5).toISOString();
    if (given.period) object.period = "1 day";
    const r = await buy(t, [object]);
    expect(r.status).toBe(400);
    expect(r.headers.get("content-type")).toBe("application/problem+json");
    expect(r.body.errors.map((e: { point: string }) => e.point).sort()).toEqual(
      fields.map((f) => `/objects/0/${f}`).sort(),
    );
    expect((await expectOk(call("GET", "/v1/subscriptions/", { token: t.partnerKey }))).objects).toEqual([]);
  });

  it("buys 500 objects but not 501", async () => {
    const t = await setup(100_000);
    const object = { customer: t.customers[0], resource: "dssd", amount: 1, period: "1 day" };
    const tooMany = await buy(
      t,
      Array.from({ length: 501 }, () => object),
    );
    expect(tooMany.status).toBe(400);
    expect(tooMany.body.errors[0].point).toBe("/objects");
    const ok = await buy(
      t,
      Array.from({ length: 500 }, () => object),
    );
    expect(ok.status).toBe(201);
    expect(ok.body.objects).toHaveLength(500);
    expect(await usageOf(t, 0, "dssd")).toMatchObject({ usage: 500, pending: 0 });
  });

  it("makes three subscriptions of an ip bought with amount 3", async () => {
    const t = await setup();
    const r = await buy(t, [{ customer: t.customers[0], resource: "ip", amount: 3, period: "1 month" }]);
    expect(r.status).toBe(201);
    expect(r.body.objects.map((s: { resource: string; amount: number }) => [s.resource, s.amount])).toEqual([
      ["ip", 1],
      ["ip", 1],
      ["ip", 1],
    ]);
    expect(new Set(r.body.objects.map((s: { id: string }) => s.id)).size).toBe(3);
    expect(await usageOf(t, 0, "ip")).toMatchObject({ usage: 3 });
  });

  it("is atomic: one object over quota and nothing is bought", async () => {
    const t = await setup(10);
    const r = await buy(t, [
      { customer: t.customers[0], resource: "cpu", amount: 5, period: "1 day" },
      { customer: t.customers[1], resource: "mem", amount: 4, period: "1 day" },
      { customer: t.customers[1], resource: "mem", amount: 7, period: "1 day" },
    ]);
    expect(r.status).toBe(409);
    expect(r.body).toMatchObject({
      type: "https://stratus.dev/problems/quota-exceeded",
      title: "Quota Exceeded",
      status: 409,
      resource: "mem",
      customer: t.customers[1],
      limit: 10,
      usage: 0,
      requested: 11,
    });
    expect(await usageOf(t, 0, "cpu")).toEqual({ usage: 0, limit: 10, pending: 0 });
    expect(await usageOf(t, 1, "mem")).toEqual({ usage: 0, limit: 10, pending: 0 });
    expect((await expectOk(call("GET", "/v1/subscriptions/", { token: t.partnerKey }))).objects).toEqual([]);
  });

  it("prices without buying in the calculator", async () => {
    const t = await setup();
    const r = await call("POST", "/v1/subscriptioncalculator/", {
      token: t.partnerKey,
      body: { objects: [{ customer: t.customers[0], resource: "ip", amount: 2, period: "1 day" }] },
    });
    expect(r.status).toBe(200);
    expect(r.body.objects).toHaveLength(2);
    expect(r.body.meta.currency).toBe("EUR");
    expect(await usageOf(t, 0, "ip")).toEqual({ usage: 0, limit: 1000, pending: 0 });
    const bad = await call("POST", "/v1/subscriptioncalculator/", {
      token: t.partnerKey,
      body: { objects: [{ customer: t.customers[0], resource: "nope", amount: 1, period: "1 day" }] },
    });
    expect(bad.status).toBe(400);
    expect(bad.body.errors).toEqual([
      { point: "/objects/0/resource", message: "is no product of the catalog" },
    ]);
  });
});

describe("depletable tx", () => {
  it("ignores time parameters, and depletes into the next one", async () => {
    const t = await setup();
    const c = t.customers[0];
    const first = await buy(t, [{ customer: c, resource: "tx", amount: 10, period: "1 year" }]);
    const second = await buy(t, [{ customer: c, resource: "tx", amount: 5 }]);
    expect(first.status).toBe(201);
    expect(second.status).toBe(201);
    const a = first.body.objects[0];
    const b = second.body.objects[0];
    expect(a).toMatchObject({ end_time: null, period: null, remaining: 10, status: "active", price: "0.50" });
    expect(b).toMatchObject({ remaining: 5, status: "inactive" });

    const used = await expectOk(
      call("POST", `/v1/customers/${c}/consumption`, {
        token: t.partnerKey,
        body: { resource: "tx", amount: 12 },
      }),
    );
    expect(used.meta.unallocated).toBe(0);
    const [ra, rb] = await Promise.all([
      expectOk(call("GET", `/v1/subscriptions/${a.id}/`, { token: t.partnerKey })),
      expectOk(call("GET", `/v1/subscriptions/${b.id}/`, { token: t.partnerKey })),
    ]);
    expect(ra).toMatchObject({ remaining: 0, status: "expired", end_reason: "depleted" });
    expect(rb).toMatchObject({ remaining: 3, status: "active" });
    expect(await usageOf(t, 0, "tx")).toMatchObject({ usage: 5 });
    const active = await expectOk(
      call("GET", "/v1/subscriptions/?status=active&resource=tx", { token: t.partnerKey }),
    );
    expect(active.objects.map((s: { id: string }) => s.id)).toEqual([b.id]);
    const expired = await expectOk(call("GET", "/v1/subscriptions/?status=expired", { token: t.partnerKey }));
    expect(expired.objects.map((s: { id: string }) => s.id)).toEqual([a.id]);
  });
});

describe("depletable tx, read one at a time", () => {
  const read = (t: Tenant, id: string) =>
    expectOk(call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey }));

  it("a head that was read as active is queued once an older one is created after it", async () => {
    const t = await setup();
    const c = t.customers[0];
    const young = (await buy(t, [{ customer: c, resource: "tx", amount: 5 }])).body.objects[0];
    expect(await read(t, young.id)).toMatchObject({ status: "active" });
    expect(await read(t, young.id)).toMatchObject({ status: "active" });

    // An asynchronous purchase chose its id before this one's and creates its object only now
    // (its quota held as that purchase would have).
    await issueCommission(
      env,
      { serviceId: null, partnerId: t.partnerId },
      {
        name: "held as the asynchronous purchase would",
        force: false,
        autoAccept: true,
        provisions: [{ holder: c!, source: "system", resource: "stratus.tx", quantity: 5 }],
      },
      new Date(),
    );
    const record = (await subscriptionObject(env, young.id).get())!;
    const olderId = `00${young.id.slice(2)}`;
    await subscriptionObject(env, olderId).create({ ...record, id: olderId, rootId: olderId, version: 0 });

    expect(await read(t, olderId)).toMatchObject({ status: "active" });
    expect(await read(t, young.id)).toMatchObject({ status: "inactive" });
    await expectOk(
      call("POST", `/v1/customers/${c}/consumption`, {
        token: t.partnerKey,
        body: { resource: "tx", amount: 5 },
      }),
    );
    expect(await read(t, olderId)).toMatchObject({ status: "expired", end_reason: "depleted" });
    expect(await read(t, young.id)).toMatchObject({ status: "active", remaining: 5 });

    // Read while queued, then the one before it is cancelled: it is used now.
    const next = (await buy(t, [{ customer: c, resource: "tx", amount: 3 }])).body.objects[0];
    expect(await read(t, next.id)).toMatchObject({ status: "inactive" });
    expect(await read(t, next.id)).toMatchObject({ status: "inactive" });
    await expectOk(call("DELETE", `/v1/subscriptions/${young.id}/`, { token: t.partnerKey }));
    expect(await read(t, next.id)).toMatchObject({ status: "active" });
  });
});

describe("listing and reading", () => {
  it("filters by status and resource and pages with a cursor", async () => {
    const t = await setup();
    const c = t.customers[0];
    await buy(t, [
      { customer: c, resource: "cpu", amount: 1, period: "1 day" },
      { customer: c, resource: "mem", amount: 1, period: "1 day" },
      { customer: c, resource: "dssd", amount: 1, start_time: future(5).toISOString(), period: "1 day" },
    ]);
    const list = async (q: string) =>
      (await expectOk(call("GET", `/v1/subscriptions/${q}`, { token: t.partnerKey }))).objects.map(
        (s: { resource: string }) => s.resource,
      );
    expect(await list("")).toEqual(["cpu", "mem", "dssd"]);
    expect(await list("?status=active")).toEqual(["cpu", "mem"]);
    expect(await list("?status=inactive")).toEqual(["dssd"]);
    expect(await list("?status=notexpired&resource=mem,dssd")).toEqual(["mem", "dssd"]);
    expect(await list("?status=expired")).toEqual([]);
    const page = await expectOk(call("GET", "/v1/subscriptions/?limit=2", { token: t.partnerKey }));
    expect(page.objects).toHaveLength(2);
    const rest = await expectOk(
      call("GET", `/v1/subscriptions/?limit=2&cursor=${page.meta.next_cursor}`, { token: t.partnerKey }),
    );
    expect(rest.objects.map((s: { resource: string }) => s.resource)).toEqual(["dssd"]);
    expect(rest.meta.next_cursor).toBeNull();
    const bad = await call("GET", "/v1/subscriptions/?status=sometimes", { token: t.partnerKey });
    expect(bad.status).toBe(400);
    expect(bad.body.errors[0].point).toBe("/status");
  });

  it("lists each subscription as reading it answers, under every status filter", async () => {
    const t = await setup();
    const c = t.customers[0];
    const bought = async (objects: unknown[]) =>
      (await buy(t, objects)).body.objects as Array<{ id: string }>;
    const [cpu, dssd, cloud] = await bought([
      { customer: c, resource: "cpu", amount: 1, period: "1 day" },
      { customer: c, resource: "hdd", amount: 2, start_time: future(5).toISOString(), period: "1 day" },
      { customer: c, resource: "cumulus", amount: 1 },
    ]);
    const [txFirst] = await bought([{ customer: c, resource: "tx", amount: 10 }]);
    const [txQueued] = await bought([{ customer: c, resource: "tx", amount: 5 }]);
    const [mem] = await bought([{ customer: c, resource: "mem", amount: 1, period: "1 day" }]);
    await expectOk(call("DELETE", `/v1/subscriptions/${mem!.id}/`, { token: t.partnerKey }));
    await expectOk(call("POST", `/v1/subscriptions/${cloud!.id}/action/?do=start`, { token: t.partnerKey }));
    const extension = await expectOk(
      call("POST", `/v1/subscriptions/${cpu!.id}/action/?do=extend`, { token: t.partnerKey }),
    );
    const ids = (...subs: Array<{ id: string } | undefined>) => subs.map((sub) => sub!.id).sort();
    const expected: Record<string, string[]> = {
      active: ids(cpu, cloud, txFirst),
      inactive: ids(dssd, txQueued, extension),
      expired: ids(mem),
      notexpired: ids(cpu, cloud, txFirst, dssd, txQueued, extension),
      all: ids(cpu, cloud, txFirst, dssd, txQueued, extension, mem),
    };
    for (const [status, wanted] of Object.entries(expected)) {
      const page = await expectOk(
        call("GET", `/v1/subscriptions/?status=${status}`, { token: t.partnerKey }),
      );
      expect(
        page.objects.map((o: { id: string }) => o.id),
        status,
      ).toEqual(wanted);
      for (const listed of page.objects) {
        const read = await expectOk(call("GET", `/v1/subscriptions/${listed.id}/`, { token: t.partnerKey }));
        expect(listed, `${status}: ${listed.resource}`).toEqual(read);
      }
    }
    const byAlias = await expectOk(
      call("GET", "/v1/subscriptions/?status=inactive&resource=hdd,tx", { token: t.partnerKey }),
    );
    expect(byAlias.objects.map((o: { id: string }) => o.id)).toEqual(ids(dssd, txQueued));
  });

  it("resolves a product's alias in a list filter as soon as the product exists", async () => {
    const t = await setup();
    // The catalog is read (and kept) before the new product exists.
    await expectOk(call("GET", "/v1/subscriptions/?resource=hdd", { token: t.partnerKey }));
    const id = unique("cirrus");
    await expectOk(
      call("PUT", `/v1/resources/stratus.${id}`, {
        token: t.operator,
        body: { service: "stratus", unit: "cloud" },
      }),
    );
    await expectOk(
      call("PUT", `/v1/products/${id}`, {
        token: t.operator,
        body: {
          name: id,
          kind: "caas",
          unit: "cloud",
          unit_price: "1.00",
          currency: "EUR",
          quota_resource: `stratus.${id}`,
          aliases: [`${id}-alias`],
        },
      }),
    );
    await expectOk(
      call("PUT", `/v1/customers/${t.customers[0]}/quotas`, {
        token: t.operator,
        body: { resource: `stratus.${id}`, limit: 10 },
      }),
    );
    const sub = (await buy(t, [{ customer: t.customers[0], resource: id, amount: 1 }])).body.objects[0];
    const listed = await expectOk(
      call("GET", `/v1/subscriptions/?resource=${id}-alias`, { token: t.partnerKey }),
    );
    expect(listed.objects.map((o: { id: string }) => o.id)).toEqual([sub.id]);

    // A price change applies at once here (the instance that took it), to quotes and purchases.
    const quote = () =>
      expectOk(
        call("POST", "/v1/subscriptioncalculator/", {
          token: t.partnerKey,
          body: { objects: [{ customer: t.customers[0], resource: id, amount: 1, period: "1 day" }] },
        }),
      );
    expect((await quote()).objects[0]).toMatchObject({ price: "0.00", end_time: null });
    await expectOk(
      call("PUT", `/v1/products/${id}`, {
        token: t.operator,
        body: {
          name: id,
          kind: "timed",
          unit: "cloud",
          unit_price: "2.00",
          currency: "EUR",
          quota_resource: `stratus.${id}`,
          aliases: [],
        },
      }),
    );
    const after = await quote();
    expect(after.objects[0]).toMatchObject({ end_time: expect.any(String) });
    expect(after.objects[0].price).not.toBe("0.00");
    const moved = await call("GET", `/v1/subscriptions/?resource=${id}-alias`, { token: t.partnerKey });
    expect(moved.body.objects).toEqual([]);
  });

  it("answers 404 for another partner's subscription on every route", async () => {
    const t = await setup();
    const other = await tenant({ customers: 0 });
    const sub = (await buy(t, [{ customer: t.customers[0], resource: "cpu", amount: 1, period: "1 day" }]))
      .body.objects[0];
    const attempts: Array<[string, string, unknown]> = [
      ["GET", `/v1/subscriptions/${sub.id}/`, undefined],
      ["PATCH", `/v1/subscriptions/${sub.id}/`, { amount: 3 }],
      ["DELETE", `/v1/subscriptions/${sub.id}/`, undefined],
      ["POST", `/v1/subscriptions/${sub.id}/action/?do=extend`, {}],
      ["POST", `/v1/subscriptions/${sub.id}/action/?do=auto_renew`, {}],
      ["POST", `/v1/subscriptions/${sub.id}/action/?do=start`, {}],
      ["GET", `/v1/subscriptions/${sub.id}/usage`, undefined],
    ];
    for (const [method, path, body] of attempts) {
      const r = await call(method, path, { token: other.partnerKey, ...(body ? { body } : {}) });
      expect(r.status, `${method} ${path}`).toBe(404);
    }
    const buyForeign = await buy(other, [
      { customer: t.customers[0], resource: "cpu", amount: 1, period: "1 day" },
    ]);
    expect(buyForeign.status).toBe(400);
    expect(buyForeign.body.errors[0].point).toBe("/objects/0/customer");
    const mine = await expectOk(call("GET", `/v1/subscriptions/${sub.id}/`, { token: t.partnerKey }));
    expect(mine).toMatchObject({ amount: 1, auto_renew: false, ended_at: null });
  });
});

describe("changing", () => {
  it("refuses an amount change on every prepaid kind with 409, changing nothing", async () => {
    const t = await setup(10);
    const c = t.customers[0];
    const bought = (
      await buy(t, [
        { customer: c, resource: "cpu", amount: 2, period: "1 day" },
        { customer: c, resource: "msft-windows", amount: 2, period: "1 month" },
        { customer: c, resource: "ip", amount: 1, period: "1 month" },
        { customer: c, resource: "tx", amount: 2 },
      ])
    ).body.objects;
    const orders = async () =>
      (await expectOk(call("GET", "/v1/orders", { token: t.partnerKey }))).objects.length;
    const before = await orders();
    for (const sub of bought) {
      const r = await call("PATCH", `/v1/subscriptions/${sub.id}/`, {
        token: t.partnerKey,
        body: { amount: 3 },
      });
      expect(r.status, sub.resource).toBe(409);
      expect(r.headers.get("content-type")).toBe("application/problem+json");
      expect(r.body.detail).toMatch(/prepaid: only auto_renew can change; .*buy another subscription/);
      expect(r.body.errors).toEqual([{ point: "/amount", message: r.body.detail }]);
      const after = await expectOk(call("GET", `/v1/subscriptions/${sub.id}/`, { token: t.partnerKey }));
      expect(after).toMatchObject({ amount: sub.amount, price: sub.price });
      expect((await usageOf(t, 0, sub.resource)).usage).toBe(sub.amount);
      // The one thing that can change.
      const renew = await call("PATCH", `/v1/subscriptions/${sub.id}/`, {
        token: t.partnerKey,
        body: { auto_renew: true },
      });
      expect(renew.status).toBe(200);
    }
    expect(await orders()).toBe(before);
  });

  it("changes a CaaS cloud's amount with quota following, and refuses immutable fields", async () => {
    const t = await setup(10);
    const sub = (await buy(t, [{ customer: t.customers[0], resource: "cumulus", amount: 2 }])).body
      .objects[0];
    const up = await call("PATCH", `/v1/subscriptions/${sub.id}/`, {
      token: t.partnerKey,
      body: { amount: 6 },
    });
    expect(up.status).toBe(200);
    expect(up.body.amount).toBe(6);
    expect(await usageOf(t, 0, "cumulus")).toMatchObject({ usage: 6, pending: 0 });
    const over = await call("PATCH", `/v1/subscriptions/${sub.id}/`, {
      token: t.partnerKey,
      body: { amount: 11 },
    });
    expect(over.status).toBe(409);
    // The shape of every quota refusal under /v1, a purchase's included; no Astakos member leaks.
    expect(over.body).toMatchObject({
      type: "https://stratus.dev/problems/quota-exceeded",
      resource: "cumulus",
      quota_resource: "stratus.cumulus",
      customer: t.customers[0],
      limit: 10,
      usage: 6,
      requested: 5,
    });
    expect(over.body).not.toHaveProperty("provision");
    expect(over.body).not.toHaveProperty("name");
    const down = await call("PATCH", `/v1/subscriptions/${sub.id}/`, {
      token: t.partnerKey,
      body: { amount: 1 },
    });
    expect(down.body.amount).toBe(1);
    expect(await usageOf(t, 0, "cumulus")).toMatchObject({ usage: 1, pending: 0 });
    for (const body of [
      { resource: "mem" },
      { end_time: future(3).toISOString() },
      { amount: 0 },
      { amount: "2.5" },
    ]) {
      const r = await call("PATCH", `/v1/subscriptions/${sub.id}/`, { token: t.partnerKey, body });
      expect(r.status).toBe(400);
      expect(r.body.errors.length).toBeGreaterThan(0);
    }
    const after = await expectOk(call("GET", `/v1/subscriptions/${sub.id}/`, { token: t.partnerKey }));
    expect(after).toMatchObject({ amount: 1, resource: "cumulus" });
  });

  it("applies 50 concurrent PATCHes one at a time: final amount and quota agree", async () => {
    const t = await setup(100);
    const sub = (await buy(t, [{ customer: t.customers[0], resource: "cumulus", amount: 1 }])).body
      .objects[0];
    const amounts = Array.from({ length: 50 }, (_, i) => (i % 10) + 1);
    const replies = await Promise.all(
      amounts.map((amount) =>
        call("PATCH", `/v1/subscriptions/${sub.id}/`, { token: t.partnerKey, body: { amount } }),
      ),
    );
    expect(replies.every((r) => r.status === 200)).toBe(true);
    const final = await expectOk(call("GET", `/v1/subscriptions/${sub.id}/`, { token: t.partnerKey }));
    expect(amounts).toContain(final.amount);
    expect(await usageOf(t, 0, "cumulus")).toEqual({ usage: final.amount, limit: 100, pending: 0 });
    const listed = await expectOk(
      call("GET", "/v1/subscriptions/?resource=cumulus", { token: t.partnerKey }),
    );
    expect(listed.objects[0].amount).toBe(final.amount);
  });

  it("toggles or sets auto_renew", async () => {
    const t = await setup();
    const sub = (await buy(t, [{ customer: t.customers[0], resource: "cpu", amount: 1, period: "1 day" }]))
      .body.objects[0];
    const action = (body?: unknown) =>
      expectOk(
        call("POST", `/v1/subscriptions/${sub.id}/action/?do=auto_renew`, {
          token: t.partnerKey,
          ...(body ? { body } : {}),
        }),
      );
    expect((await action()).auto_renew).toBe(true);
    expect((await action()).auto_renew).toBe(false);
    expect((await action({ auto_renew: false })).auto_renew).toBe(false);
    expect((await action({ auto_renew: true })).auto_renew).toBe(true);
    const patched = await call("PATCH", `/v1/subscriptions/${sub.id}/`, {
      token: t.partnerKey,
      body: { auto_renew: false },
    });
    expect(patched.body.auto_renew).toBe(false);
    const unknown = await call("POST", `/v1/subscriptions/${sub.id}/action/?do=explode`, {
      token: t.partnerKey,
    });
    expect(unknown.status).toBe(400);
  });

  it("cancels: releases the quota, expires, and cancelling again changes nothing", async () => {
    const t = await setup();
    const sub = (await buy(t, [{ customer: t.customers[0], resource: "vlan", amount: 1, period: "1 month" }]))
      .body.objects[0];
    expect(await usageOf(t, 0, "vlan")).toMatchObject({ usage: 1 });
    const r = await call("DELETE", `/v1/subscriptions/${sub.id}/`, { token: t.partnerKey });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ status: "expired", end_reason: "cancelled" });
    const again = await call("DELETE", `/v1/subscriptions/${sub.id}/`, { token: t.partnerKey });
    expect(again.body.ended_at).toBe(r.body.ended_at);
    expect(await usageOf(t, 0, "vlan")).toMatchObject({ usage: 0, pending: 0 });
    const extend = await call("POST", `/v1/subscriptions/${sub.id}/action/?do=extend`, {
      token: t.partnerKey,
    });
    expect(extend.status).toBe(409);
  });
});

describe("extending", () => {
  it("a chain that has lapsed continues from now: no term is bought that is over before it is bought", async () => {
    const t = await setup();
    const bought = new Date(Date.UTC(new Date().getUTCFullYear() + 3, 2, 10, 15));
    vi.useFakeTimers({ toFake: ["Date"] });
    try {
      vi.setSystemTime(bought);
      const sub = (await buy(t, [{ customer: t.customers[0], resource: "cpu", amount: 1, period: "1 day" }]))
        .body.objects[0];
      const later = new Date(bought.getTime() + 22 * 86_400_000);
      vi.setSystemTime(later);
      const r = await expectOk(
        call("POST", `/v1/subscriptions/${sub.id}/action/?do=extend`, { token: t.partnerKey }),
      );
      expect(r).toMatchObject({ start_time: later.toISOString(), status: "active", extends: sub.id });
      expect(Date.parse(r.end_time)).toBeGreaterThan(later.getTime() + 86_400_000);
      await expectBooksBalance(t);
    } finally {
      vi.useRealTimers();
    }
  });

  it("repeats a period-created subscription's period from the new start: February then March", async () => {
    const t = await setup();
    const feb = new Date(Date.UTC(new Date().getUTCFullYear() + 2, 1, 1, 12));
    const sub = (
      await buy(t, [
        {
          customer: t.customers[0],
          resource: "cpu",
          amount: 1,
          start_time: feb.toISOString(),
          period: "1 month",
        },
      ])
    ).body.objects[0];
    expect(sub.end_time).toBe(new Date(Date.UTC(feb.getUTCFullYear(), 2, 1, 12)).toISOString());
    const r = await call("POST", `/v1/subscriptions/${sub.id}/action/?do=extend`, { token: t.partnerKey });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ start_time: sub.end_time, period: "1 month", extends: sub.id });
    expect(Date.parse(r.body.end_time) - Date.parse(r.body.start_time)).toBe(31 * 86_400_000);
    // The chain holds its amount once.
    expect(await usageOf(t, 0, "cpu")).toMatchObject({ usage: 1 });
  });

  it("repeats an end_time-created subscription's exact interval, and extends the last of the chain", async () => {
    const t = await setup();
    const year = new Date().getUTCFullYear() + 2;
    const feb = new Date(Date.UTC(year, 1, 1, 12));
    const mar = new Date(Date.UTC(year, 2, 1, 12));
    const first = (
      await buy(t, [
        {
          customer: t.customers[0],
          resource: "dssd",
          amount: 5,
          start_time: feb.toISOString(),
          end_time: mar.toISOString(),
        },
      ])
    ).body.objects[0];
    const second = await expectOk(
      call("POST", `/v1/subscriptions/${first.id}/action/?do=extend`, { token: t.partnerKey }),
    );
    const days = (mar.getTime() - feb.getTime()) / 86_400_000;
    expect(Date.parse(second.end_time) - Date.parse(second.start_time)).toBe(days * 86_400_000);
    // Extending the first again extends the last of its chain.
    const third = await expectOk(
      call("POST", `/v1/subscriptions/${first.id}/action/?do=extend`, {
        token: t.partnerKey,
        body: { period: "1 week" },
      }),
    );
    expect(third).toMatchObject({ start_time: second.end_time, extends: second.id, period: "1 week" });

    const root = await expectOk(call("GET", `/v1/subscriptions/${first.id}/`, { token: t.partnerKey }));
    expect(root.descendants).toEqual([second.id, third.id]);
    const grouped = await expectOk(call("GET", "/v1/groupedsubscriptions/", { token: t.partnerKey }));
    expect(grouped.objects).toHaveLength(1);
    expect(grouped.objects[0]).toMatchObject({
      id: first.id,
      descendants: [second.id, third.id],
      end_time: third.end_time,
    });
    const orders = await expectOk(call("GET", "/v1/orders", { token: t.partnerKey }));
    expect(orders.objects).toHaveLength(3);
  });

  it("refuses a bad extension body and extensions of open-ended subscriptions", async () => {
    const t = await setup();
    const [timed, tx] = (
      await buy(t, [
        { customer: t.customers[0], resource: "cpu", amount: 1, period: "1 day" },
        { customer: t.customers[0], resource: "tx", amount: 1 },
      ])
    ).body.objects;
    const both = await call("POST", `/v1/subscriptions/${timed.id}/action/?do=extend`, {
      token: t.partnerKey,
      body: { period: "1 day", end_time: future(30).toISOString() },
    });
    expect(both.status).toBe(400);
    const badPeriod = await call("POST", `/v1/subscriptions/${timed.id}/action/?do=extend`, {
      token: t.partnerKey,
      body: { period: "forever" },
    });
    expect(badPeriod.status).toBe(400);
    expect(badPeriod.body.errors[0].point).toBe("/period");
    const open = await call("POST", `/v1/subscriptions/${tx.id}/action/?do=extend`, { token: t.partnerKey });
    expect(open.status).toBe(400);
    const root = await expectOk(call("GET", `/v1/subscriptions/${timed.id}/`, { token: t.partnerKey }));
    expect(root.descendants).toEqual([]);
  });
});

describe("CaaS clouds", () => {
  it("starts stopped, runs, and meters running time", async () => {
    const t = await setup();
    const cloud = (await buy(t, [{ customer: t.customers[0], resource: "cumulus", amount: 2 }])).body
      .objects[0];
    expect(cloud).toMatchObject({ run_state: "stopped", end_time: null, price: "0.00" });
    const started = await expectOk(
      call("POST", `/v1/subscriptions/${cloud.id}/action/?do=start`, { token: t.partnerKey }),
    );
    expect(started.run_state).toBe("running");
    const stopped = await expectOk(
      call("POST", `/v1/subscriptions/${cloud.id}/action/?do=stop`, { token: t.partnerKey }),
    );
    expect(stopped.run_state).toBe("stopped");
    const usage = await expectOk(call("GET", `/v1/subscriptions/${cloud.id}/usage`, { token: t.partnerKey }));
    expect(usage).toMatchObject({ subscription: cloud.id, currency: "EUR", unit_price_per_hour: "1.00" });
    expect(usage.intervals).toHaveLength(1);
    expect(usage.intervals[0]).toMatchObject({ quantity: 2 });
    const timed = (await buy(t, [{ customer: t.customers[0], resource: "cpu", amount: 1, period: "1 day" }]))
      .body.objects[0];
    const notCaas = await call("POST", `/v1/subscriptions/${timed.id}/action/?do=start`, {
      token: t.partnerKey,
    });
    expect(notCaas.status).toBe(400);
  });
});

describe("idempotency", () => {
  it("replays a purchase under concurrency: bought once", async () => {
    const t = await setup();
    const object = { customer: t.customers[0], resource: "cpu", amount: 3, period: "1 day" };
    const replies = await Promise.all(
      Array.from({ length: 10 }, () => buy(t, [object], { "idempotency-key": "buy-once" })),
    );
    const created = replies.filter((r) => r.status === 201);
    expect(created.length).toBeGreaterThanOrEqual(1);
    expect(replies.every((r) => r.status === 201 || r.status === 409)).toBe(true);
    expect(new Set(created.map((r) => r.text)).size).toBe(1);
    const replay = await buy(t, [object], { "idempotency-key": "buy-once" });
    expect(replay.status).toBe(201);
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect(replay.text).toBe(created[0]!.text);
    expect(await usageOf(t, 0, "cpu")).toMatchObject({ usage: 3 });
    const list = await expectOk(call("GET", "/v1/subscriptions/", { token: t.partnerKey }));
    expect(list.objects).toHaveLength(1);
  });
});

describe("the D1 read model", () => {
  const projection = (id: string) =>
    env.DB.prepare("SELECT version, auto_renew FROM subscriptions WHERE id = ?")
      .bind(id)
      .first<{ version: number; auto_renew: number }>();

  it("follows every change, through restarts of the object and a push that failed", async () => {
    const t = await setup();
    const r = await buy(t, [{ customer: t.customers[0], resource: "cpu", amount: 1, period: "1 week" }]);
    const id = r.body.objects[0].id as string;
    const object = subscriptionObject(env, id);
    expect(await projection(id)).toEqual({ version: 1, auto_renew: 0 });

    await evictDurableObject(subscriptionShard(env, id));
    expect((await object.setAutoRenew(true)).ok).toBe(true);
    expect(await projection(id)).toEqual({ version: 2, auto_renew: 1 });

    // The next push fails: the change is committed, D1 still shows the version before it.
    await runInDurableObject(subscriptionShard(env, id), (instance: SubscriptionObject) => {
      const own = instance as unknown as { env: Env };
      own.env = { ...own.env, DB: failingD1(own.env.DB, "prepare", "batch") };
    });
    expect((await object.setAutoRenew(false)).ok).toBe(true);
    expect(await projection(id)).toEqual({ version: 2, auto_renew: 1 });

    // A restart loses what the instance knew; the alarm still pushes the version D1 lacks.
    await evictDurableObject(subscriptionShard(env, id));
    expect(await runDurableObjectAlarm(subscriptionShard(env, id))).toBe(true);
    expect(await projection(id)).toEqual({ version: 3, auto_renew: 0 });
    // Nothing is left to retry: the alarm waits only for the push checks of the commits.
    const left = await shardAlarmOf(id);
    expect(left.wakes).toEqual([]);
    expect(left.alarm).toBe(left.check);
  });

  it("is remembered by the object across restarts: a restarted depletable asks D1 once whether it is queued", async () => {
    const t = await setup();
    const r = await buy(t, [{ customer: t.customers[0], resource: "tx", amount: 5 }]);
    const id = r.body.objects[0].id as string;
    await evictDurableObject(subscriptionShard(env, id));
    const stored = await runInDurableObject(subscriptionShard(env, id), (_instance, state) =>
      state.storage.sql.exec<{ projected: number }>("SELECT projected FROM records WHERE id = ?", id).one(),
    );
    expect(stored.projected).toBe(1);

    const read = () => call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey });
    expect((await read()).body).toMatchObject({ status: "active" });
    // Its verdict is kept now: D1 going down does not reach the reads.
    await runInDurableObject(subscriptionShard(env, id), (instance: SubscriptionObject) => {
      const own = instance as unknown as { env: Env };
      own.env = { ...own.env, DB: failingD1(own.env.DB, "prepare", "batch") };
    });
    const again = await read();
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ status: "active" });
  });
});

describe("a purchase's order", () => {
  it("totals every line of its customer's subscriptions: the purchase's total for one customer", async () => {
    const t = await setup();
    const objects = [
      { customer: t.customers[0], resource: "mem", amount: 2, period: "1 month" },
      { customer: t.customers[0], resource: "cpu", amount: 1, period: "1 month" },
    ];
    const bought = await buy(t, objects);
    expect(bought.status).toBe(201);
    const [order] = bought.body.meta.orders as Array<{ id: string; total_price: string }>;
    const read = await expectOk(call("GET", `/v1/orders/${order?.id}`, { token: t.partnerKey }));
    expect(read.lines).toHaveLength(2);
    expect(read.total_price).toBe(bought.body.meta.total_price);
    expect(order?.total_price).toBe(bought.body.meta.total_price);
  });
});
