import { createScheduledController } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { runOperation } from "../../src/app/operations";
import worker from "../../src/index";
import { deliver as deliverOperations, expectBooksBalance } from "../books";
import {
  buyOne,
  call,
  eventually,
  expectOk,
  keptQueue,
  shardsHeld,
  type Tenant,
  tenantWithCatalog,
  usageOf,
} from "../helpers";

/**
 * A cancel or an `auto_renew` off accepted with `Prefer: respond-async` waits in the operations
 * queue; with its consumer behind (down for hours, a backlog), the cron reached the term's end
 * first and bought its renewal, charged after the partner had stopped it, the chain renewing on.
 * Found reviewing the books after an outage: a renewal now waits for such a change to run.
 */

let year = new Date().getUTCFullYear() + 30;
const nextYear = () => year++;
const noon = (y: number, m: number, d: number) => new Date(Date.UTC(y, m - 1, d, 12));

async function cron(at: Date) {
  await worker.scheduled(
    createScheduledController({ scheduledTime: at.getTime(), cron: "*/5 * * * *" }),
    env,
  );
}

const read = (t: Tenant, id: string) =>
  expectOk(call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey }));

async function linesOf(t: Tenant) {
  const page = await expectOk(
    call("GET", `/v1/charges?customer=${t.customers[0]}&limit=500`, { token: t.partnerKey }),
  );
  return page.objects as any[];
}

/** The Worker's bindings with an operations queue that keeps what is sent to it (its consumer down). */
function operationsDown() {
  const { queue, sent } = keptQueue();
  return { env: { ...env, OPERATIONS: queue } as Env, sent };
}

describe("the operations consumer behind while the cron renews", () => {
  for (const [what, method, path, body] of [
    ["a cancel", "DELETE", (id: string) => `/v1/subscriptions/${id}/`, undefined],
    ["auto_renew turned off", "PATCH", (id: string) => `/v1/subscriptions/${id}/`, { auto_renew: false }],
  ] as const) {
    it(`${what} accepted before the term's end, run after the cron came: the term is not renewed`, async () => {
      const t = await tenantWithCatalog(1, 100);
      const y = nextYear();
      const sub = await buyOne(t, {
        resource: "cpu",
        amount: 1,
        start_time: noon(y, 5, 1).toISOString(),
        period: "1 day",
        auto_renew: true,
      });
      const down = operationsDown();
      const accepted = await call(method, path(sub.id), {
        token: t.partnerKey,
        headers: { Prefer: "respond-async" },
        ...(body ? { body } : {}),
        env: down.env,
      });
      expect(accepted.status).toBe(202);
      expect(down.sent).toHaveLength(1);
      // The cron reaches the term's end while the change waits in the queue, then the queue resumes.
      await cron(new Date(noon(y, 5, 2).getTime() - 60_000));
      await new Promise((r) => setTimeout(r, 1500));
      await deliverOperations(down.sent);
      const location = new URL(accepted.headers.get("location") ?? "", "http://stratus.test").pathname;
      const op = await call("GET", location, { token: t.partnerKey });
      expect(op.status).toBe(200);
      // A later run (it forgets the operation: years past its retention) renews nothing either.
      await cron(new Date(noon(y, 5, 2).getTime() + 4 * 60_000));
      await new Promise((r) => setTimeout(r, 1500));
      // As with the queue up: the change applied before the term's end, nothing renewed or charged.
      expect((await read(t, sub.id)).descendants).toEqual([]);
      expect((await linesOf(t)).map((l) => [l.subscription, l.kind, l.amount])).toEqual([
        [sub.id, "purchase", "0.48"],
      ]);
      await expectBooksBalance(t);
    }, 60_000);
  }

  it("two bare toggles accepted while off, the second run after the cron came: the term is not renewed", async () => {
    // Each toggle was accepted as an on (the flag off then) and flips the flag as it stands when it
    // runs: the second turns it off. Read as an on by what it was accepted with, it did not stop the
    // cron's claim, and the renewal was bought and charged before the partner's off ran.
    const t = await tenantWithCatalog(1, 100);
    const y = nextYear();
    const sub = await buyOne(t, {
      resource: "cpu",
      amount: 1,
      start_time: noon(y, 7, 1).toISOString(),
      period: "1 day",
      auto_renew: false,
    });
    const down = operationsDown();
    for (let i = 0; i < 2; i++) {
      const accepted = await call("POST", `/v1/subscriptions/${sub.id}/action/?do=auto_renew`, {
        token: t.partnerKey,
        headers: { Prefer: "respond-async" },
        env: down.env,
      });
      expect(accepted.status).toBe(202);
    }
    expect(down.sent).toHaveLength(2);
    await deliverOperations(down.sent.slice(0, 1));
    expect((await read(t, sub.id)).auto_renew).toBe(true);
    await cron(new Date(noon(y, 7, 2).getTime() - 60_000));
    await new Promise((r) => setTimeout(r, 1500));
    await deliverOperations(down.sent.slice(1));
    await cron(new Date(noon(y, 7, 2).getTime() + 4 * 60_000));
    await new Promise((r) => setTimeout(r, 1500));
    expect(await read(t, sub.id)).toMatchObject({ auto_renew: false, descendants: [] });
    expect((await linesOf(t)).map((l) => [l.subscription, l.kind, l.amount])).toEqual([
      [sub.id, "purchase", "0.48"],
    ]);
    await expectBooksBalance(t);
  }, 60_000);

  it("auto_renew turned off on the chain's first term, queued: its last term, due, is not renewed", async () => {
    // The chain's flag is its last term's, and a partner stops the chain by its first id (as
    // grouped lists name it): a stop queued there holds the claim of whichever term of the chain is due.
    const t = await tenantWithCatalog(1, 100);
    const y = nextYear();
    const sub = await buyOne(t, {
      resource: "cpu",
      amount: 1,
      start_time: noon(y, 8, 1).toISOString(),
      period: "1 day",
      auto_renew: true,
    });
    const extension = await expectOk(
      call("POST", `/v1/subscriptions/${sub.id}/action/?do=extend`, { token: t.partnerKey }),
    );
    const down = operationsDown();
    const accepted = await call("PATCH", `/v1/subscriptions/${sub.id}/`, {
      token: t.partnerKey,
      headers: { Prefer: "respond-async" },
      body: { auto_renew: false },
      env: down.env,
    });
    expect(accepted.status).toBe(202);
    await cron(new Date(noon(y, 8, 3).getTime() - 60_000));
    await new Promise((r) => setTimeout(r, 1500));
    await deliverOperations(down.sent);
    await cron(new Date(noon(y, 8, 3).getTime() + 4 * 60_000));
    await new Promise((r) => setTimeout(r, 1500));
    expect(await read(t, sub.id)).toMatchObject({ auto_renew: false, descendants: [extension.id] });
    expect((await linesOf(t)).map((l) => [l.subscription, l.kind])).toEqual([
      [sub.id, "purchase"],
      [extension.id, "extension"],
    ]);
    await expectBooksBalance(t);
  }, 60_000);

  it("auto_renew turned off, its operation running when the cron came: the term is not renewed", async () => {
    // Its consumer took it up (running) and is slow, or died and it waits for its redelivery: it
    // is no more run than one still queued, and decides first as well.
    const t = await tenantWithCatalog(1, 100);
    const y = nextYear();
    const sub = await buyOne(t, {
      resource: "cpu",
      amount: 1,
      start_time: noon(y, 9, 1).toISOString(),
      period: "1 day",
      auto_renew: true,
    });
    const down = operationsDown();
    const accepted = await call("POST", `/v1/subscriptions/${sub.id}/action/?do=auto_renew`, {
      token: t.partnerKey,
      headers: { Prefer: "respond-async" },
      body: { auto_renew: false },
      env: down.env,
    });
    expect(accepted.status).toBe(202);
    const slow = shardsHeld("setAutoRenew");
    const running = runOperation(slow.env, down.sent[0].opRef);
    await slow.reached;
    await cron(new Date(noon(y, 9, 2).getTime() - 60_000));
    await new Promise((r) => setTimeout(r, 1500));
    slow.release();
    await running;
    await cron(new Date(noon(y, 9, 2).getTime() + 4 * 60_000));
    await new Promise((r) => setTimeout(r, 1500));
    expect(await read(t, sub.id)).toMatchObject({ auto_renew: false, descendants: [] });
    expect((await linesOf(t)).map((l) => [l.subscription, l.kind])).toEqual([[sub.id, "purchase"]]);
    await expectBooksBalance(t);
  }, 60_000);

  it("a queued cancel that fails leaves the term to the next run, which renews it from its end", async () => {
    const t = await tenantWithCatalog(1, 100);
    const y = nextYear();
    const sub = await buyOne(t, {
      resource: "cpu",
      amount: 1,
      start_time: noon(y, 6, 1).toISOString(),
      period: "1 day",
      auto_renew: true,
    });
    const etag = (await call("GET", `/v1/subscriptions/${sub.id}/`, { token: t.partnerKey })).headers.get(
      "etag",
    );
    const down = operationsDown();
    const accepted = await call("DELETE", `/v1/subscriptions/${sub.id}/`, {
      token: t.partnerKey,
      headers: { Prefer: "respond-async", "If-Match": etag ?? "" },
      env: down.env,
    });
    expect(accepted.status).toBe(202);
    // The subscription changes meanwhile: the cancel, under If-Match, will not apply.
    for (const flag of [false, true])
      await expectOk(
        call("PATCH", `/v1/subscriptions/${sub.id}/`, { token: t.partnerKey, body: { auto_renew: flag } }),
      );
    await cron(new Date(noon(y, 6, 2).getTime() - 60_000));
    await new Promise((r) => setTimeout(r, 1500));
    expect((await read(t, sub.id)).descendants).toEqual([]);
    await deliverOperations(down.sent);
    const location = new URL(accepted.headers.get("location") ?? "", "http://stratus.test").pathname;
    expect((await call("GET", location, { token: t.partnerKey })).status).toBe(412);
    await cron(new Date(noon(y, 6, 2).getTime() + 4 * 60_000));
    const renewal = await eventually(async () => (await read(t, sub.id)).descendants[0], "the renewal");
    expect(await read(t, renewal)).toMatchObject({
      start_time: noon(y, 6, 2).toISOString(),
      end_time: noon(y, 6, 3).toISOString(),
    });
    expect(await usageOf(t, 0, "cpu")).toMatchObject({ usage: 1, pending: 0 });
    await expectBooksBalance(t);
  }, 60_000);
});
