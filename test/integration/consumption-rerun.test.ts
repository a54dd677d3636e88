import { createScheduledController, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { consume } from "../../src/app/reads";
import { buy } from "../../src/app/subscriptions";
import { queueOfReport } from "../../src/db/consumption-queues";
import { REPORT_MEMORY_MS } from "../../src/domain/consumption";
import { armFault, disarmFaults } from "../../src/domain/faults";
import worker from "../../src/index";
import { subscriptionShard } from "../../src/objects/subscription-object";
import { expectBooksBalance, purchaseDiedAt } from "../books";
import {
  call,
  eventually,
  expectOk,
  gate,
  ledgersHeld,
  reportDrawsOf,
  shardsHeld,
  type Tenant,
  tenantWithCatalog,
  unique,
} from "../helpers";

/**
 * A report run again (its keyed retry, its operation run once more) finds what its first run took
 * (README, "Consumption"): even when the depletable it took from ended since, as of an earlier
 * time than the report's (it ends no earlier than the latest report that drew from it, so it stays
 * in that report's queue), and however many other reports drew from it since (its shard remembers
 * reports by age, not by count). Before, the retry drained the next depletable, or the same one,
 * again.
 */

const read = (t: Tenant, id: string) =>
  expectOk(call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey }));

async function buyTx(t: Tenant, customer: string, amount: number) {
  const bought = await expectOk(
    call("POST", "/v1/subscriptions/", {
      token: t.partnerKey,
      body: { objects: [{ customer, resource: "tx", amount }] },
    }),
    201,
  );
  return bought.objects[0].id as string;
}

/** Sends `customer`'s reports of tx as its partner. */
function reportsOf(t: Tenant, customer: string) {
  return (amount: number, headers: Record<string, string> = {}) =>
    call("POST", `/v1/customers/${customer}/consumption`, {
      token: t.partnerKey,
      headers,
      body: { resource: "tx", amount },
    });
}

describe("a report accepted earlier that depletes, after a later report drew from the same depletable", () => {
  it("leaves the later report's retry draining nothing more", async () => {
    const t = await tenantWithCatalog(1, 100);
    const customer = t.customers[0] as string;
    const first = await buyTx(t, customer, 10);
    const second = await buyTx(t, customer, 10);
    const report = reportsOf(t, customer);
    // R1 is accepted first (its time is the earlier) and waits in the operations queue.
    const r1 = await report(10, { prefer: "respond-async" });
    expect(r1.status, r1.text).toBe(202);
    await new Promise((resolve) => setTimeout(resolve, 5));
    // R2, accepted after it, runs at once and takes 4 of the first; its answer is lost.
    const key = unique("key");
    armFault("request.answered");
    expect((await report(4, { "idempotency-key": key })).status).toBe(500);
    disarmFaults();
    expect(await read(t, first), "R2 ran before R1").toMatchObject({ remaining: 6 });
    // R1 runs: the 6 left of the first (depleting it, as of R1's time) and 4 of the second.
    const done = await eventually(async () => {
      const r = await call("GET", r1.headers.get("location") as string, { token: t.partnerKey });
      return r.status === 202 ? undefined : r;
    }, "R1's operation");
    expect(done.status, done.text).toBe(200);
    expect(done.body.meta).toEqual({ unallocated: 0 });
    expect(await read(t, first)).toMatchObject({ remaining: 0, end_reason: "depleted" });
    expect(await read(t, second)).toMatchObject({ remaining: 6 });
    // R2's retry: its 4 were taken from the first; nothing more is drained.
    const retry = await report(4, { "idempotency-key": key });
    expect(retry.status, retry.text).toBe(200);
    expect(retry.body.meta).toEqual({ unallocated: 0 });
    expect((await reportDrawsOf(first)).map((d) => d.used).sort()).toEqual([4, 6]);
    expect(await read(t, second), "R2 drained once in all").toMatchObject({ remaining: 6 });
    await expectBooksBalance(t);
  });
});

describe("a cancel under way while a report accepted after it draws from the depletable", () => {
  it("leaves the report's retry draining nothing more", async () => {
    const t = await tenantWithCatalog(1, 100);
    const customer = t.customers[0] as string;
    const first = await buyTx(t, customer, 10);
    const second = await buyTx(t, customer, 10);
    // The cancel takes its time, then asks the ledger whether the purchase is open: held there.
    const held = ledgersHeld(["openRecovery"]);
    const cancel = call("DELETE", `/v1/subscriptions/${first}/`, { token: t.partnerKey, env: held.env });
    await held.reached;
    await new Promise((resolve) => setTimeout(resolve, 5));
    // A report accepted after that takes 4 of the first; its answer is lost.
    const key = unique("key");
    const report = () => reportsOf(t, customer)(4, { "idempotency-key": key });
    armFault("request.answered");
    expect((await report()).status).toBe(500);
    disarmFaults();
    expect(await read(t, first)).toMatchObject({ remaining: 6 });
    held.release();
    const cancelled = await cancel;
    expect(cancelled.status, cancelled.text).toBe(200);
    expect(cancelled.body).toMatchObject({ end_reason: "cancelled", remaining: 6 });
    // Its retry: the 4 were taken from the first (cancelled since); nothing more is drained.
    const retry = await report();
    expect(retry.status, retry.text).toBe(200);
    expect(retry.body.meta).toEqual({ unallocated: 0 });
    expect(await read(t, second), "the report drained once in all").toMatchObject({ remaining: 10 });
    await expectBooksBalance(t);
  });
});

describe("a report retried by its Idempotency-Key after 32 other reports drew from the same depletable", () => {
  it("drains nothing more: what its first run took is still remembered", async () => {
    const t = await tenantWithCatalog(1, 1000);
    const customer = t.customers[0] as string;
    const only = await buyTx(t, customer, 1000);
    const report = reportsOf(t, customer);
    // Its first run takes 4 and its answer is lost: the key keeps no answer (a 500).
    const key = unique("key");
    armFault("request.answered");
    expect((await report(4, { "idempotency-key": key })).status).toBe(500);
    disarmFaults();
    // A customer whose traffic is reported every few seconds: 32 reports before the retry.
    for (let i = 0; i < 32; i++) expect((await report(1)).status).toBe(200);
    expect(await read(t, only)).toMatchObject({ remaining: 964 });
    const retry = await report(4, { "idempotency-key": key });
    expect(retry.status, retry.text).toBe(200);
    expect(retry.body.meta).toEqual({ unallocated: 0 });
    expect(await read(t, only), "the report drained once").toMatchObject({ remaining: 964 });
    await expectBooksBalance(t);
  });
});

describe("the queue a report walks", () => {
  it("is stored by its first run, and forgotten by the cron once past the reports' memory", async () => {
    const t = await tenantWithCatalog(1, 100);
    const customer = t.customers[0] as string;
    const only = await buyTx(t, customer, 10);
    const report = unique("report");
    await consume(env, customer, "tx", 1, new Date(), report);
    const stored = () =>
      env.DB.prepare("SELECT subscriptions FROM consumption_queues WHERE report = ?")
        .bind(report)
        .first<{ subscriptions: string }>();
    expect(JSON.parse((await stored())?.subscriptions ?? "null")).toEqual([only]);
    await worker.scheduled(
      createScheduledController({ scheduledTime: Date.now() + REPORT_MEMORY_MS - 60_000 }),
      env,
    );
    expect(await stored()).not.toBeNull();
    await worker.scheduled(
      createScheduledController({ scheduledTime: Date.now() + REPORT_MEMORY_MS + 60_000 }),
      env,
    );
    expect(await stored()).toBeNull();
  });
});

describe("two first runs of one report storing their queues at once", () => {
  it("both walk the one stored first", async () => {
    const report = unique("report");
    const both = gate();
    let reads = 0;
    // Both runs have read their own queue before either stores it.
    const read = (queue: string[]) => async () => {
      if (++reads === 2) both.release();
      await both.pass();
      return queue;
    };
    const now = new Date();
    const [{ queue: a }, { queue: b }] = await Promise.all([
      queueOfReport(env, report, read(["a"]), now),
      queueOfReport(env, report, read(["b"]), now),
    ]);
    expect(a).toEqual(b);
    expect([["a"], ["b"]]).toContainEqual(a);
  });
});

describe("what a shard remembers of reports", () => {
  it("is forgotten once older than the memory (48 hours): a report's retry comes long before", async () => {
    const t = await tenantWithCatalog(1, 100);
    const customer = t.customers[0] as string;
    const only = await buyTx(t, customer, 10);
    const report = () => reportsOf(t, customer)(1);
    expect((await report()).status).toBe(200);
    const [first] = await reportDrawsOf(only);
    await runInDurableObject(subscriptionShard(env, only), async (_i, state) => {
      state.storage.sql.exec(
        "UPDATE report_draws SET at = ? WHERE subscription = ? AND report = ?",
        Date.now() - REPORT_MEMORY_MS - 1,
        only,
        first?.report,
      );
    });
    expect((await report()).status).toBe(200);
    const kept = await reportDrawsOf(only);
    expect(kept).toHaveLength(1);
    expect(kept[0]?.report).not.toBe(first?.report);
  });
});

describe("two runs of one report at once, an older depletable taking effect between their reads", () => {
  it("drain the report once: both walk the queue the first run read", async () => {
    const t = await tenantWithCatalog(1, 100);
    const customer = t.customers[0] as string;
    // A purchase of tx whose request died after its commission: its id is older than the next one's.
    const died = await purchaseDiedAt(t, "purchase.issued", ["tx"]);
    disarmFaults();
    const older = died.ids.subscriptions[0] as string;
    const newer = await buyTx(t, customer, 10);
    const report = unique("report");
    const at = new Date();
    // The first run reads its queue (the newer only), then waits before it reads the newer.
    const first = shardsHeld("get", { nth: 1 });
    const firstRun = consume(first.env, customer, "tx", 1, at, report);
    await first.reached;
    // The purchase's retry finishes it: the older takes effect and is in the read model.
    await buy(env, t.partnerId, died.planned, died.ids, new Date());
    await eventually(async () => {
      const row = await env.DB.prepare("SELECT 1 AS ok FROM subscriptions WHERE id = ?").bind(older).first();
      return row ?? undefined;
    }, "the older in D1");
    // A second run of the report (its operation delivered again) walks the same queue.
    const second = await consume(env, customer, "tx", 1, at, report);
    first.release();
    const one = await firstRun;
    expect([one.unallocated, second.unallocated]).toEqual([0, 0]);
    expect((await read(t, older)).remaining, "the older, not in the first run's queue").toBe(2);
    expect((await read(t, newer)).remaining, "drained once").toBe(9);
    await expectBooksBalance(t);
  });
});
