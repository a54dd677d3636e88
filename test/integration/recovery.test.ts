import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { abandon, buy } from "../../src/app/subscriptions";
import { armFault, disarmFaults, type FaultStep } from "../../src/domain/faults";
import { recoveryBoundMs } from "../../src/domain/recovery";
import { ledgerOf } from "../../src/objects/quota-ledger";
import { subscriptionObject, subscriptionShard } from "../../src/objects/subscription-object";
import { expectBooksBalance, purchaseDiedAt, recoverAll } from "../books";
import {
  call,
  eventually,
  expectOk,
  failingD1,
  type Tenant,
  tenantWithCatalog,
  unique,
  usageOf,
} from "../helpers";

/**
 * Crashes, retries and recovery: a retry with the key resumes what its first attempt committed
 * to; the recovery sweep settles what a dead request left; an object finishes a quota move it
 * was interrupted in. After each, the books balance (test/books.ts).
 */

const setup = (limit = 100) => tenantWithCatalog(2, limit);

afterEach(() => disarmFaults());

const PURCHASE_STEPS: FaultStep[] = [
  "purchase.issued",
  "purchase.created",
  "purchase.ordered",
  "purchase.accepted",
];

/** A CaaS cloud: the one kind whose amount may change. */
const cloud = async (t: Tenant) =>
  (
    await expectOk(
      call("POST", "/v1/subscriptions/", {
        token: t.partnerKey,
        body: { objects: [{ customer: t.customers[0], resource: "cumulus", amount: 3 }] },
      }),
      201,
    )
  ).objects[0].id as string;

const purchase = (t: Tenant, key?: string) =>
  call("POST", "/v1/subscriptions/", {
    token: t.partnerKey,
    body: { objects: [{ customer: t.customers[0], resource: "cpu", amount: 3, period: "1 month" }] },
    headers: key ? { "idempotency-key": key } : {},
  });

describe("a retry with the same Idempotency-Key resumes the first attempt", () => {
  for (const step of PURCHASE_STEPS) {
    it(`buys once when the first attempt died at ${step}`, async () => {
      const t = await setup();
      const key = unique("key");
      armFault(step);
      const first = await purchase(t, key);
      expect(first.status).toBe(500);
      const retry = await purchase(t, key);
      expect(retry.status, retry.text).toBe(201);
      expect(retry.headers.get("idempotent-replayed")).toBe("true");
      const again = await purchase(t, key);
      expect(again.status).toBe(201);
      expect(again.body.objects[0].id).toBe(retry.body.objects[0].id);
      const list = await expectOk(call("GET", "/v1/subscriptions/?status=all", { token: t.partnerKey }));
      expect(list.objects).toHaveLength(1);
      expect(await usageOf(t, 0, "cpu")).toMatchObject({ usage: 3, pending: 0 });
      await expectBooksBalance(t);
    });
  }

  it("buys once when D1 failed the first attempt's orders: the key keeps the work, the retry finishes it", async () => {
    const t = await setup();
    const key = unique("key");
    const request = (bindings: Env) =>
      call("POST", "/v1/subscriptions/", {
        token: t.partnerKey,
        headers: { "idempotency-key": key },
        // Two subscriptions: their order is written by the request, after both exist (one
        // subscription's rides in its projection's batch, which its shard writes).
        body: {
          objects: [
            { customer: t.customers[0], resource: "cpu", amount: 3, period: "1 month" },
            { customer: t.customers[0], resource: "mem", amount: 1, period: "1 month" },
          ],
        },
        env: bindings,
      });
    const first = await request({ ...env, DB: failingD1(env.DB, "batch") });
    expect(first.status).toBe(500);
    expect((await usageOf(t, 0, "cpu")).pending).toBe(3);
    const retry = await request(env);
    expect(retry.status, retry.text).toBe(201);
    expect(retry.headers.get("idempotent-replayed")).toBe("true");
    expect(await usageOf(t, 0, "cpu")).toMatchObject({ usage: 3, pending: 0 });
    await expectBooksBalance(t);
  });

  it("resumes the same work even when the handler would now decide otherwise", async () => {
    const t = await setup(3);
    const key = unique("key");
    armFault("purchase.accepted");
    expect((await purchase(t, key)).status).toBe(500);
    // At its limit now: a fresh purchase would be refused, the resumed one is already held.
    const retry = await purchase(t, key);
    expect(retry.status, retry.text).toBe(201);
    expect((await purchase(t)).status).toBe(409);
    await expectBooksBalance(t);
  });

  it("changes an amount once when the first attempt died between the ledger and the object", async () => {
    const t = await setup();
    const id = await cloud(t);
    const key = unique("key");
    const patch = () =>
      call("PATCH", `/v1/subscriptions/${id}/`, {
        token: t.partnerKey,
        body: { amount: 5 },
        headers: { "idempotency-key": key },
      });
    armFault("subscription.moved");
    expect((await patch()).status).toBe(500);
    const retry = await patch();
    expect(retry.status, retry.text).toBe(200);
    expect(retry.body.amount).toBe(5);
    expect(await usageOf(t, 0, "cumulus")).toMatchObject({ usage: 5, pending: 0 });
    await expectBooksBalance(t);
  });

  it("answers the extension it made even when the chain was cancelled before the retry (found by npm run soak)", async () => {
    const t = await setup();
    const base = (await expectOk(purchase(t), 201)).objects[0].id;
    const key = unique("key");
    const extend = () =>
      call("POST", `/v1/subscriptions/${base}/action/?do=extend`, {
        token: t.partnerKey,
        body: {},
        headers: { "idempotency-key": key },
      });
    armFault("purchase.accepted");
    expect((await extend()).status).toBe(500);
    await expectOk(call("DELETE", `/v1/subscriptions/${base}/`, { token: t.partnerKey }));
    const retry = await extend();
    expect(retry.status, retry.text).toBe(200);
    expect(retry.body.extends).toBe(base);
    expect(await usageOf(t, 0, "cpu")).toMatchObject({ usage: 3, pending: 0 });
    await expectBooksBalance(t);
  });

  it("extends once when the first attempt died after its orders", async () => {
    const t = await setup();
    const bought = await expectOk(purchase(t), 201);
    const key = unique("key");
    const extend = () =>
      call("POST", `/v1/subscriptions/${bought.objects[0].id}/action/?do=extend`, {
        token: t.partnerKey,
        body: {},
        headers: { "idempotency-key": key },
      });
    armFault("purchase.ordered");
    expect((await extend()).status).toBe(500);
    const retry = await extend();
    expect(retry.status, retry.text).toBe(200);
    const list = await expectOk(call("GET", "/v1/subscriptions/?status=all", { token: t.partnerKey }));
    expect(list.objects).toHaveLength(2);
    await expectBooksBalance(t);
  });
});

/** A purchase whose request died at `step` (test/books.ts). */
const diedAt = async (t: Tenant, step: FaultStep, resources?: readonly string[]) =>
  (await purchaseDiedAt(t, step, resources)).ids;

describe("an extension racing one whose request died", () => {
  it("extends the chain, and the dead one's retry with its key still finishes it", async () => {
    const t = await setup();
    const bought = await expectOk(
      call("POST", "/v1/subscriptions/", {
        token: t.partnerKey,
        body: { objects: [{ customer: t.customers[0], resource: "cpu", amount: 3, period: "1 month" }] },
      }),
      201,
    );
    const base = bought.objects[0].id;
    const key = unique("key");
    const first = () =>
      call("POST", `/v1/subscriptions/${base}/action/?do=extend`, {
        token: t.partnerKey,
        body: {},
        headers: { "idempotency-key": key },
      });
    armFault("purchase.created");
    expect((await first()).status).toBe(500);
    disarmFaults();
    // Another extension of the chain (another client): the dead one is left to its retry or
    // the sweep's bound, not undone under it.
    const second = await call("POST", `/v1/subscriptions/${base}/action/?do=extend`, { token: t.partnerKey });
    expect(second.status, second.text).toBe(200);
    const retry = await first();
    expect(retry.status, retry.text).toBe(200);
    const chain = await expectOk(call("GET", `/v1/subscriptions/${base}/`, { token: t.partnerKey }));
    expect(chain.descendants).toHaveLength(2);
    await recoverAll(t);
    await expectBooksBalance(t);
  });
});

describe("the recovery sweep settles what a dead request left", () => {
  for (const resources of [["mem"], ["mem", "cpu"]]) {
    for (const step of PURCHASE_STEPS) {
      // It took effect once its orders were written completed: one subscription's order is
      // written with it (at purchase.created), several subscriptions' once they all exist.
      const ordered = resources.length === 1 ? "purchase.created" : "purchase.ordered";
      const tookEffect = PURCHASE_STEPS.indexOf(step) >= PURCHASE_STEPS.indexOf(ordered);
      const what = `a purchase of ${resources.length} that died at ${step}`;
      it(`${what} ${tookEffect ? "took effect" : "is undone"}`, async () => {
        const t = await setup();
        const ids = await diedAt(t, step, resources);
        const held = await usageOf(t, 0, "mem");
        if (step !== "purchase.accepted") expect(held.pending).toBe(2);
        await recoverAll(t);
        expect(await usageOf(t, 0, "mem")).toMatchObject({ usage: tookEffect ? 2 : 0, pending: 0 });
        for (const id of ids.subscriptions) {
          const record = await subscriptionObject(env, id).get();
          if (step !== "purchase.issued")
            expect(record?.endReason ?? null).toBe(tookEffect ? null : "failed");
        }
        await expectBooksBalance(t);
      });
    }
  }

  it("a purchase retried after the sweep undid it stays undone: 409, nothing created live, charged or held", async () => {
    const t = await setup();
    const { ids, planned } = await purchaseDiedAt(t, "purchase.issued");
    await recoverAll(t);
    expect(await usageOf(t, 0, "mem")).toMatchObject({ usage: 0, pending: 0 });
    // The retry dies at the step after its create, if it gets there: nothing may be left live.
    armFault("purchase.created");
    const retried = buy(env, t.partnerId, planned, ids, new Date());
    await expect(retried).rejects.toMatchObject({ kind: "conflict" });
    await expect(retried).rejects.toThrow("given up");
    disarmFaults();
    await recoverAll(t);
    expect(await subscriptionObject(env, ids.subscriptions[0] as string).get()).toBeNull();
    // Its order stands failed, written so by the undo, so no late write can complete it.
    const order = await env.DB.prepare("SELECT state FROM orders WHERE id = ?")
      .bind(Object.values(ids.orders)[0])
      .first<{ state: string }>();
    expect(order?.state).toBe("failed");
    expect(await usageOf(t, 0, "mem")).toMatchObject({ usage: 0, pending: 0 });
    await expectBooksBalance(t);
  });

  it("leaves alone a purchase whose request is still within the bound", async () => {
    const t = await setup();
    const ids = await diedAt(t, "purchase.ordered");
    expect(await ledgerOf(env, t.customers[0] as string).sweep(Date.now())).toEqual([]);
    expect((await usageOf(t, 0, "mem")).pending).toBe(2);
    await recoverAll(t);
    expect(ids.subscriptions).toHaveLength(1);
    await expectBooksBalance(t);
  });

  it("cancelling a subscription whose commission was left open settles it first, then releases once", async () => {
    const t = await setup();
    for (const [step, resources, endReason] of [
      ["purchase.ordered", ["mem"], "cancelled"],
      ["purchase.created", ["mem"], "cancelled"],
      ["purchase.created", ["mem", "cpu"], "failed"],
    ] as const) {
      const ids = await diedAt(t, step, resources);
      const id = ids.subscriptions[0] as string;
      const cancelled = await expectOk(call("DELETE", `/v1/subscriptions/${id}/`, { token: t.partnerKey }));
      expect(cancelled.end_reason).toBe(endReason);
      expect(await usageOf(t, 0, "mem")).toMatchObject({ usage: 0, pending: 0 });
    }
    await expectBooksBalance(t);
  });
});

describe("a subscription finishes a quota move it was interrupted in", () => {
  for (const [step, applied] of [
    ["subscription.step", false],
    ["subscription.moved", true],
  ] as const) {
    it(`after ${step}, evicted, the change is ${applied ? "committed" : "dropped"} by its next call and by its alarm`, async () => {
      const t = await setup();
      const id = await cloud(t);
      for (const finish of ["next call", "alarm"] as const) {
        const before = (await expectOk(call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey })))
          .amount;
        armFault(step);
        const r = await call("PATCH", `/v1/subscriptions/${id}/`, {
          token: t.partnerKey,
          body: { amount: before + 1 },
        });
        expect(r.status).toBe(500);
        const stub = subscriptionShard(env, id);
        await evictDurableObject(stub);
        if (finish === "alarm") await runDurableObjectAlarm(stub);
        const read = await expectOk(call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey }));
        expect(read.amount).toBe(applied ? before + 1 : before);
        expect(await usageOf(t, 0, "cumulus")).toMatchObject({ usage: read.amount, pending: 0 });
      }
      await expectBooksBalance(t);
    });
  }

  it("after subscription.moved with the question how it ended lost too, the next read commits the change", async () => {
    // The change's own request asks the ledger when it fails; that answer lost as well, the step
    // stays open for the next call (or the alarm) to finish before anything else.
    const t = await setup();
    const id = await cloud(t);
    armFault("subscription.moved");
    armFault("subscription.asked");
    const r = await call("PATCH", `/v1/subscriptions/${id}/`, { token: t.partnerKey, body: { amount: 4 } });
    expect(r.status).toBe(500);
    await evictDurableObject(subscriptionShard(env, id));
    const read = await expectOk(call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey }));
    expect(read.amount).toBe(4);
    expect(await usageOf(t, 0, "cumulus")).toMatchObject({ usage: 4, pending: 0 });
    await expectBooksBalance(t);
  });

  it("a cancel interrupted after the release ends the subscription, releasing once", async () => {
    const t = await setup();
    const id = (await expectOk(purchase(t), 201)).objects[0].id;
    armFault("subscription.moved");
    expect((await call("DELETE", `/v1/subscriptions/${id}/`, { token: t.partnerKey })).status).toBe(500);
    await evictDurableObject(subscriptionShard(env, id));
    const again = await expectOk(call("DELETE", `/v1/subscriptions/${id}/`, { token: t.partnerKey }));
    expect(again.end_reason).toBe("cancelled");
    expect(await usageOf(t, 0, "cpu")).toMatchObject({ usage: 0, pending: 0 });
    await expectBooksBalance(t);
  });
});

describe("operations never stay stuck", () => {
  it("an operation whose message was lost is queued again and completes", async () => {
    const t = await setup();
    armFault("operation.started", 1000);
    const accepted = await call("POST", "/v1/subscriptions/", {
      token: t.partnerKey,
      body: { objects: [{ customer: t.customers[0], resource: "cpu", amount: 1, period: "1 month" }] },
      headers: { prefer: "respond-async" },
    });
    expect(accepted.status).toBe(202);
    const location = accepted.headers.get("location") as string;
    // Every delivery dies: the operation stays running with no progress.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    disarmFaults();
    await recoverAll(t);
    const done = await call("GET", location, { token: t.partnerKey });
    expect(done.status, done.text).toBe(201);
    await expectBooksBalance(t);
  });

  it("an operation that used its attempts is given up and undone, not run forever", async () => {
    const t = await setup();
    armFault("purchase.created", 1000);
    const accepted = await call("POST", "/v1/subscriptions/", {
      token: t.partnerKey,
      body: { objects: [{ customer: t.customers[0], resource: "cpu", amount: 1, period: "1 month" }] },
      headers: { prefer: "respond-async" },
    });
    const opRef = (accepted.headers.get("location") as string).split("/").at(-1);
    await env.DB.prepare("UPDATE operations SET attempts = 99 WHERE op_ref = ?").bind(opRef).run();
    await new Promise((resolve) => setTimeout(resolve, 200));
    await recoverAll(t);
    disarmFaults();
    const done = await call("GET", `/v1/operations/${opRef}`, { token: t.partnerKey });
    expect(done.status, done.text).toBe(409);
    expect(await usageOf(t, 0, "cpu")).toMatchObject({ usage: 0, pending: 0 });
    await expectBooksBalance(t);
  });
});

describe("every /v1 write is done once however often its answer is lost", () => {
  const creates: Array<[string, (t: Tenant) => { path: string; token: string; body: unknown }, string]> = [
    [
      "a customer",
      (t) => ({ path: "/v1/customers", token: t.partnerKey, body: { name: "once" } }),
      "customers",
    ],
    [
      "a user token",
      (t) => ({ path: `/v1/customers/${t.customers[0]}/tokens`, token: t.partnerKey, body: {} }),
      "credentials",
    ],
    [
      "a partner",
      (t) => ({ path: "/v1/partners", token: t.operator, body: { name: unique("p") } }),
      "partners",
    ],
    [
      "a partner key",
      (t) => ({ path: `/v1/partners/${t.partnerId}/api-keys`, token: t.operator, body: {} }),
      "credentials",
    ],
    [
      "a service",
      (t) => ({ path: "/v1/services", token: t.operator, body: { partner: t.partnerId, name: unique("s") } }),
      "services",
    ],
    ["a vendor", (t) => ({ path: "/v1/vendors", token: t.operator, body: { name: "once" } }), "vendors"],
  ];
  for (const [what, request, table] of creates) {
    it(`creates ${what} once, and the retry's answer works`, async () => {
      const t = await setup();
      const { path, token, body } = request(t);
      const count = async () =>
        (await env.DB.prepare(`SELECT count(*) AS n FROM ${table}`).first<{ n: number }>())?.n ?? 0;
      const before = await count();
      const key = unique("key");
      const send = () => call("POST", path, { token, body, headers: { "idempotency-key": key } });
      armFault("request.answered");
      expect((await send()).status).toBe(500);
      const retry = await send();
      expect(retry.status, retry.text).toBe(201);
      expect(await count()).toBe(before + 1);
      if (typeof retry.body.token === "string") {
        // A secret is never kept with its key: the retry issues it anew under the same id (not a
        // replay), and the one answered last is the one that works.
        expect(retry.headers.get("idempotent-replayed")).toBeNull();
        const again = await send();
        expect({ id: again.body.id, token: again.body.token === retry.body.token }).toEqual({
          id: retry.body.id,
          token: false,
        });
        expect(await count()).toBe(before + 1);
        const family =
          table === "credentials" && path.includes("/customers/") ? "/account/v1.0/quotas" : "/v1/products";
        expect((await call("GET", family, { token: again.body.token })).status).toBe(200);
        expect((await call("GET", family, { token: retry.body.token })).status).toBe(401);
        return;
      }
      expect(retry.headers.get("idempotent-replayed")).toBe("true");
      expect((await send()).text).toBe(retry.text);
    });
  }

  for (const [what, kind] of [
    ["a purchase", "buy"],
    ["a cancel", "cancel"],
  ] as const) {
    it(`${what} whose answer was lost is answered by its retry, done once`, async () => {
      const t = await setup();
      const id = kind === "cancel" ? (await expectOk(purchase(t), 201)).objects[0].id : null;
      const key = unique("key");
      const send = () =>
        id
          ? call("DELETE", `/v1/subscriptions/${id}/`, {
              token: t.partnerKey,
              headers: { "idempotency-key": key },
            })
          : purchase(t, key);
      armFault("request.answered");
      expect((await send()).status).toBe(500);
      const retry = await send();
      expect(retry.status, retry.text).toBe(id ? 200 : 201);
      expect(retry.headers.get("idempotent-replayed")).toBe("true");
      await expectBooksBalance(t);
    });
  }
});

describe("a consumption report drains once", () => {
  for (const step of ["request.answered", "subscription.moved"] as const) {
    it(`whatever its first attempt did before dying at ${step}`, async () => {
      const t = await setup();
      const c = t.customers[0];
      const tx = async () =>
        (
          await expectOk(
            call("POST", "/v1/subscriptions/", {
              token: t.partnerKey,
              body: { objects: [{ customer: c, resource: "tx", amount: 5 }] },
            }),
            201,
          )
        ).objects[0].id as string;
      const [first, second] = [await tx(), await tx()];
      const key = unique("key");
      const report = () =>
        call("POST", `/v1/customers/${c}/consumption`, {
          token: t.partnerKey,
          body: { resource: "tx", amount: 7 },
          headers: { "idempotency-key": key },
        });
      armFault(step);
      expect((await report()).status).toBe(500);
      const retry = await report();
      expect(retry.status, retry.text).toBe(200);
      expect(retry.headers.get("idempotent-replayed")).toBe("true");
      expect(retry.body.meta.unallocated).toBe(0);
      const read = (id: string) => expectOk(call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey }));
      expect(await read(first)).toMatchObject({ remaining: 0, end_reason: "depleted" });
      expect(await read(second)).toMatchObject({ remaining: 3, end_reason: null });
      expect(await usageOf(t, 0, "tx")).toMatchObject({ usage: 5, pending: 0 });
      await expectBooksBalance(t);
    });
  }
});

describe("an undo run again", () => {
  it("leaves the subscriptions it failed as they are: ended when the first run ended them, no new version", async () => {
    // An undo's follow-up that died (or the sweep and a cancel both settling it) runs it again:
    // a subscription already ended stays as it ended (its ETag and events unchanged).
    const t = await setup();
    const { ids } = await purchaseDiedAt(t, "purchase.created");
    const id = ids.subscriptions[0] as string;
    expect(await abandon(env, ids, new Date())).toBe("undone");
    const first = await call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey });
    expect(first.body).toMatchObject({ end_reason: "failed" });
    expect(await abandon(env, ids, new Date(Date.now() + 60_000))).toBe("undone");
    const again = await call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey });
    expect({ ended_at: again.body.ended_at, etag: again.headers.get("etag") }).toEqual({
      ended_at: first.body.ended_at,
      etag: first.headers.get("etag"),
    });
    await expectBooksBalance(t);
  });

  it("a subscription failed before failures recorded their hold given back releases nothing when woken", async () => {
    // Its purchase's rejected commission gave its quota back; stored before `failedAt` said so
    // (`holdReleased`), only its end reason does. Released again, it would give back quota that
    // another subscription of the customer holds.
    const t = await setup();
    const { ids } = await purchaseDiedAt(t, "purchase.created");
    const id = ids.subscriptions[0] as string;
    expect(await abandon(env, ids, new Date())).toBe("undone");
    await expectOk(
      call("POST", "/v1/subscriptions/", {
        token: t.partnerKey,
        body: { objects: [{ customer: t.customers[0], resource: "mem", amount: 2, period: "1 month" }] },
      }),
      201,
    );
    expect(await usageOf(t, 0, "mem")).toMatchObject({ usage: 2, pending: 0 });
    await runInDurableObject(subscriptionShard(env, id), async (_i, state) => {
      const row = state.storage.sql.exec<{ body: string }>("SELECT body FROM records WHERE id = ?", id).one();
      const { holdReleased: _, ...asStored } = JSON.parse(row.body);
      state.storage.sql.exec("UPDATE records SET body = ? WHERE id = ?", JSON.stringify(asStored), id);
      state.storage.sql.exec("INSERT OR REPLACE INTO wakes (subscription, at) VALUES (?, ?)", id, Date.now());
      await state.storage.setAlarm(Date.now());
    });
    await evictDurableObject(subscriptionShard(env, id));
    await runDurableObjectAlarm(subscriptionShard(env, id));
    expect(await usageOf(t, 0, "mem")).toMatchObject({ usage: 2, pending: 0 });
  });
});

describe("an undo that comes after its purchase was accepted", () => {
  it("finishes the purchase instead: live, held, its order completed and charged once", async () => {
    // The sweep read the orders before the request wrote them (not taken effect), then the request
    // accepted the commission: the undo follows the commission's decision.
    const t = await setup();
    const { ids } = await purchaseDiedAt(t, "purchase.accepted");
    expect(await abandon(env, ids, new Date())).toBe("took effect");
    const id = ids.subscriptions[0] as string;
    const read = await expectOk(call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey }));
    expect(read.end_reason).toBeNull();
    expect(await usageOf(t, 0, "mem")).toMatchObject({ usage: 2, pending: 0 });
    const order = await env.DB.prepare("SELECT state FROM orders WHERE id = ?")
      .bind(Object.values(ids.orders)[0])
      .first<{ state: string }>();
    expect(order?.state).toBe("completed");
    await expectBooksBalance(t);
  });
});

describe("a purchase whose request died once its quota was held", () => {
  it("is settled by its ledger's own alarm, set when it was issued for when the bound passes", async () => {
    // recoverAll sweeps each ledger itself: this is what does it with no test to ask.
    const t = await setup();
    const { ids } = await purchaseDiedAt(t, "purchase.issued");
    expect(await usageOf(t, 0, "mem")).toMatchObject({ pending: 2 });
    const ledger = ledgerOf(env, t.customers[0] as string);
    const bound = recoveryBoundMs(env);
    await runInDurableObject(ledger, async (_i, state) => {
      const alarm = await state.storage.getAlarm();
      expect(alarm, "the ledger's alarm is set").not.toBeNull();
      expect(alarm as number).toBeLessThanOrEqual(Date.now() + bound);
      // The bound passes.
      state.storage.sql.exec("UPDATE commissions SET updated_at = ?", Date.now() - bound - 1_000);
    });
    expect(await runDurableObjectAlarm(ledger)).toBe(true);
    await eventually(
      async () => ((await usageOf(t, 0, "mem")).pending === 0 ? true : undefined),
      "the sweep's recovery to undo the purchase",
    );
    expect(await usageOf(t, 0, "mem")).toMatchObject({ usage: 0, pending: 0 });
    expect(await subscriptionObject(env, ids.subscriptions[0] as string).get()).toBeNull();
  });
});
