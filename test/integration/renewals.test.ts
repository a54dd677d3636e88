import { createScheduledController, evictDurableObject, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { extend } from "../../src/app/extend";
import { HORIZON_MS } from "../../src/cron/renewals";
import { claimQuery } from "../../src/db/due-terms";
import { armFault, disarmFaults } from "../../src/domain/faults";
import { uuidv7 } from "../../src/domain/ids";
import { partnerScope } from "../../src/domain/scope";
import worker from "../../src/index";
import { subscriptionObject, subscriptionShard } from "../../src/objects/subscription-object";
import { RENEWALS_AT_ONCE } from "../../src/queues/renewals";
import { expectBooksBalance, recoverAll } from "../books";
import {
  buyOne,
  call,
  deliverRenewals as deliver,
  dueBy,
  eventually,
  expectOk,
  type Tenant,
  tenantWithCatalog,
  usageOf,
} from "../helpers";

/** Renewals and expiry on the cron trigger, through the renewals queue. */

let year = new Date().getUTCFullYear() + 3;
/** Each test gets its own year, so a cron run for one test finds nothing of another still due. */
const nextYear = () => year++;
const noon = (y: number, month: number, day: number) => new Date(Date.UTC(y, month - 1, day, 12));

const setup = (limit = 100) => tenantWithCatalog(1, limit);

const limitIp = (t: Tenant, limit: number) =>
  expectOk(
    call("PUT", `/v1/customers/${t.customers[0]}/quotas`, {
      token: t.operator,
      body: { resource: "stratus.ip", limit },
    }),
  );

const read = (t: Tenant, id: string) =>
  expectOk(call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey }));

async function cron(at: Date) {
  await worker.scheduled(
    createScheduledController({ scheduledTime: at.getTime(), cron: "*/5 * * * *" }),
    env,
  );
}

describe("renewing", () => {
  it("renews a period-created subscription by re-reading its period: February, then 31 days of March", async () => {
    const t = await setup();
    const y = nextYear();
    const sub = await buyOne(t, {
      resource: "cpu",
      amount: 2,
      start_time: noon(y, 2, 1).toISOString(),
      period: "1 month",
      auto_renew: true,
    });
    expect(sub.end_time).toBe(noon(y, 3, 1).toISOString());
    await cron(new Date(noon(y, 3, 1).getTime() - 60_000));
    const root = await eventually(
      async () => {
        const r = await read(t, sub.id);
        return r.descendants.length > 0 ? r : undefined;
      },
      "the renewal",
      100,
    );
    const renewal = await read(t, root.descendants[0]);
    expect(renewal).toMatchObject({
      start_time: noon(y, 3, 1).toISOString(),
      end_time: noon(y, 4, 1).toISOString(),
      period: "1 month",
      auto_renew: true,
      extends: sub.id,
      amount: 2,
    });
    // The chain holds its amount once: the renewal holds nothing more.
    expect(await usageOf(t, 0, "cpu")).toMatchObject({ usage: 2, pending: 0 });
  });

  it("renews an end_time-created subscription for its exact interval", async () => {
    const t = await setup();
    const y = nextYear();
    const sub = await buyOne(t, {
      resource: "dssd",
      amount: 1,
      start_time: noon(y, 2, 1).toISOString(),
      end_time: noon(y, 3, 1).toISOString(),
      auto_renew: true,
    });
    const at = new Date(noon(y, 3, 1).getTime() - 60_000);
    await deliver([{ subscription: sub.id, at: at.toISOString() }]);
    const root = await read(t, sub.id);
    const renewal = await read(t, root.descendants[0]);
    const days = (noon(y, 3, 1).getTime() - noon(y, 2, 1).getTime()) / 86_400_000;
    expect(renewal.start_time).toBe(noon(y, 3, 1).toISOString());
    expect(Date.parse(renewal.end_time) - Date.parse(renewal.start_time)).toBe(days * 86_400_000);
  });

  it("renews once, whether the cron runs twice or the message is delivered again", async () => {
    const t = await setup();
    const y = nextYear();
    const sub = await buyOne(t, {
      resource: "mem",
      amount: 1,
      start_time: noon(y, 5, 1).toISOString(),
      period: "1 week",
      auto_renew: true,
    });
    const at = new Date(Date.parse(sub.end_time) - 60_000);
    const message = { subscription: sub.id, at: at.toISOString() };
    const results = await Promise.all([deliver([message]), deliver([message])]);
    expect(results.every((r) => r.explicitAcks.length === 1)).toBe(true);
    await deliver([message]);
    await cron(at);
    await cron(at);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const root = await read(t, sub.id);
    expect(root.descendants).toHaveLength(1);
    expect(await usageOf(t, 0, "mem")).toMatchObject({ usage: 1, pending: 0 });
    const grouped = await expectOk(call("GET", "/v1/groupedsubscriptions/", { token: t.partnerKey }));
    expect(grouped.objects).toHaveLength(1);
  });

  it("extends from the chain's end when it was extended by hand after the renewal read it", async () => {
    const t = await setup();
    const y = nextYear();
    const sub = await buyOne(t, {
      resource: "mem",
      amount: 1,
      start_time: noon(y, 6, 1).toISOString(),
      period: "1 week",
      auto_renew: true,
    });
    const stale = await subscriptionObject(env, sub.id).get();
    const byHand = await expectOk(
      call("POST", `/v1/subscriptions/${sub.id}/action/?do=extend`, { token: t.partnerKey }),
    );
    const renewal = await extend(
      env,
      partnerScope(t.partnerId),
      sub.id,
      {},
      { subscription: uuidv7(), order: uuidv7() },
      new Date(Date.parse(sub.end_time) - 60_000),
      { from: stale! },
    );
    expect(renewal.previousId).toBe(byHand.id);
    expect(renewal.startTime).toBe(byHand.end_time);
    expect((await read(t, sub.id)).descendants).toEqual([byHand.id, renewal.id]);
  });

  it("expires instead when the renewal does not fit the quota, and says why", async () => {
    const t = await setup(1);
    const y = nextYear();
    const sub = await buyOne(t, {
      resource: "ip",
      amount: 1,
      start_time: noon(y, 6, 1).toISOString(),
      period: "1 day",
      auto_renew: true,
    });
    expect(await usageOf(t, 0, "ip")).toMatchObject({ usage: 1 });
    // At its limit it would renew (the chain holds its amount once); the operator lowered the limit.
    await limitIp(t, 0);
    await deliver([{ subscription: sub.id, at: sub.end_time }]);
    const after = await read(t, sub.id);
    expect(after).toMatchObject({ status: "expired", end_reason: "expired", descendants: [] });
    expect(after.renewal_error).toMatch(/quota exceeded/);
    expect(await usageOf(t, 0, "ip")).toEqual({ usage: 0, limit: 0, pending: 0 });
  });

  it("renews once on a later attempt when an earlier one failed before the term was over", async () => {
    const t = await setup(1);
    const y = nextYear();
    const sub = await buyOne(t, {
      resource: "ip",
      amount: 1,
      start_time: noon(y, 7, 1).toISOString(),
      period: "1 day",
      auto_renew: true,
    });
    const at = new Date(Date.parse(sub.end_time) - 60_000);
    await limitIp(t, 0);
    await deliver([{ subscription: sub.id, at: at.toISOString() }]);
    const planned = await subscriptionObject(env, sub.id).get();
    // The refused attempt's ids are given up with its place: another delivery may have been
    // buying under them. The next attempt renews with ids of its own.
    expect(planned).toMatchObject({ endedAt: null, nextId: null, renewal: null });
    expect(await read(t, sub.id)).toMatchObject({ status: "inactive", descendants: [] });
    await limitIp(t, 1);
    await deliver([{ subscription: sub.id, at: at.toISOString() }]);
    const renewed = await subscriptionObject(env, sub.id).get();
    expect((await read(t, sub.id)).descendants).toEqual([renewed?.nextId]);
    expect(await usageOf(t, 0, "ip")).toEqual({ usage: 1, limit: 1, pending: 0 });
  });
});

describe("a batch worked on concurrently", () => {
  /** More subscriptions than the consumer works on at once, so its lanes each take several. */
  const COUNT = RENEWALS_AT_ONCE + 4;

  /** COUNT `ip` subscriptions of 1, auto_renew, in one purchase: the customer at its limit of COUNT. */
  async function atTheLimit() {
    const t = await setup(COUNT);
    const y = nextYear();
    const bought = await expectOk(
      call("POST", "/v1/subscriptions/", {
        token: t.partnerKey,
        body: {
          objects: Array.from({ length: COUNT }, () => ({
            customer: t.customers[0],
            resource: "ip",
            amount: 1,
            start_time: noon(y, 3, 1).toISOString(),
            period: "1 day",
            auto_renew: true,
          })),
        },
      }),
      201,
    );
    const subs: { id: string; end_time: string }[] = bought.objects;
    expect(await usageOf(t, 0, "ip")).toEqual({ usage: COUNT, limit: COUNT, pending: 0 });
    return { t, subs };
  }

  /** Each subscription's renewals, and whether it ended; none may be left with its place reserved. */
  async function outcomes(t: Tenant, subs: { id: string }[]) {
    return Promise.all(
      subs.map(async (s) => {
        const root = await read(t, s.id);
        const record = await subscriptionObject(env, s.id).get();
        expect(record?.nextId ?? null, `${s.id}: its place is its renewal's or free`).toBe(
          root.descendants[0] ?? null,
        );
        return { renewals: root.descendants.length as number, expired: root.status === "expired", root };
      }),
    );
  }

  it("renews each once when every message comes twice in one batch, holding the quota once", async () => {
    const { t, subs } = await atTheLimit();
    const at = new Date(Date.parse(subs[0]!.end_time) - 60_000).toISOString();
    const messages = subs.map((s) => ({ subscription: s.id, at }));
    const result = await deliver([...messages, ...messages]);
    expect(result.retryMessages).toEqual([]);
    expect(result.explicitAcks).toHaveLength(2 * COUNT);
    await deliver(messages);
    for (const o of await outcomes(t, subs)) expect(o).toMatchObject({ renewals: 1, expired: false });
    expect(await usageOf(t, 0, "ip")).toEqual({ usage: COUNT, limit: COUNT, pending: 0 });
    await expectBooksBalance(t);
  });

  it("over a lowered limit, renews what fits as the refused ones expire, never over the limit", async () => {
    const { t, subs } = await atTheLimit();
    const limit = COUNT - 5;
    await limitIp(t, limit);
    // The terms are over: a renewal refused expires its term, releasing the quota the next one needs.
    const result = await deliver(subs.map((s) => ({ subscription: s.id, at: s.end_time })));
    expect(result.retryMessages).toEqual([]);
    const all = await outcomes(t, subs);
    const renewed = all.filter((o) => o.renewals === 1 && !o.expired).length;
    const refused = all.filter((o) => o.renewals === 0 && o.expired);
    expect(renewed + refused.length).toBe(COUNT);
    expect(refused.length).toBeGreaterThanOrEqual(5);
    for (const o of refused) expect(o.root.renewal_error).toMatch(/quota exceeded/);
    expect(await usageOf(t, 0, "ip")).toEqual({ usage: renewed, limit, pending: 0 });
    await expectBooksBalance(t);
  });
});

describe("expiring", () => {
  it("expires a subscription without auto_renew once its term is over, releasing its quota", async () => {
    const t = await setup();
    const y = nextYear();
    const sub = await buyOne(t, {
      resource: "vlan",
      amount: 1,
      start_time: noon(y, 7, 1).toISOString(),
      period: "2 days",
    });
    await deliver([{ subscription: sub.id, at: new Date(Date.parse(sub.end_time) - 60_000).toISOString() }]);
    expect((await read(t, sub.id)).ended_at).toBeNull();
    await cron(new Date(sub.end_time));
    const expired = await eventually(
      async () => {
        const r = await read(t, sub.id);
        return r.ended_at ? r : undefined;
      },
      "the expiry",
      100,
    );
    expect(expired).toMatchObject({ end_reason: "expired", status: "expired" });
    expect(await usageOf(t, 0, "vlan")).toMatchObject({ usage: 0, pending: 0 });
    const list = await expectOk(call("GET", "/v1/subscriptions/?status=expired", { token: t.partnerKey }));
    expect(list.objects.map((s: { id: string }) => s.id)).toContain(sub.id);
    // Nothing is left to renew: turning auto_renew on answers 409 and changes nothing.
    for (const [what, request] of [
      [
        "the toggle",
        call("POST", `/v1/subscriptions/${sub.id}/action/?do=auto_renew`, { token: t.partnerKey }),
      ],
      [
        "PATCH",
        call("PATCH", `/v1/subscriptions/${sub.id}/`, { token: t.partnerKey, body: { auto_renew: true } }),
      ],
    ] as const) {
      const r = await request;
      expect(r.status, `${what}: ${r.text}`).toBe(409);
    }
    expect((await read(t, sub.id)).auto_renew).toBe(false);
    await expectBooksBalance(t);
  });

  it("stops renewing a chain whose auto_renew was turned off on its first id, as grouped lists it", async () => {
    const t = await setup();
    const y = nextYear();
    const sub = await buyOne(t, {
      resource: "mem",
      amount: 1,
      start_time: noon(y, 6, 1).toISOString(),
      period: "1 week",
      auto_renew: true,
    });
    const action = (id: string, what: string, raw?: string) =>
      expectOk(
        call("POST", `/v1/subscriptions/${id}/action/?do=${what}`, {
          token: t.partnerKey,
          ...(raw === undefined ? {} : { raw, headers: { "content-type": "application/json" } }),
        }),
      );
    // Two extensions inherit the flag; the chain's last term is the one due.
    await action(sub.id, "extend");
    const last = await action(sub.id, "extend");
    expect(last.auto_renew).toBe(true);
    // pycloudsigma's generic `_action(id, "auto_renew")` posts `null`: a toggle, on the chain.
    expect((await action(sub.id, "auto_renew", "null")).auto_renew).toBe(false);
    expect((await read(t, last.id)).auto_renew).toBe(false);
    const grouped = await expectOk(
      call("GET", "/v1/groupedsubscriptions/?resource=mem", { token: t.partnerKey }),
    );
    expect(grouped.objects.find((g: { id: string }) => g.id === sub.id)).toMatchObject({
      auto_renew: false,
      end_time: last.end_time,
    });
    await deliver([
      { subscription: last.id, at: new Date(Date.parse(last.end_time) - 60_000).toISOString() },
    ]);
    expect((await read(t, sub.id)).descendants).toHaveLength(2);
    const charges = await expectOk(call("GET", "/v1/charges", { token: t.partnerKey }));
    expect(charges.objects.filter((c: { kind: string }) => c.kind === "renewal")).toEqual([]);
    // Turned back on by the last term's own id: grouped shows the flag that decides.
    await action(last.id, "auto_renew", JSON.stringify({ auto_renew: true }));
    const again = await expectOk(
      call("GET", "/v1/groupedsubscriptions/?resource=mem", { token: t.partnerKey }),
    );
    expect(again.objects.find((g: { id: string }) => g.id === sub.id).auto_renew).toBe(true);
    expect((await read(t, sub.id)).auto_renew).toBe(false);
  });

  it("toggles, on the chain's first id, the flag grouped shows: its last term's", async () => {
    const t = await setup();
    const y = nextYear();
    const sub = await buyOne(t, {
      resource: "mem",
      amount: 1,
      start_time: noon(y, 6, 1).toISOString(),
      period: "1 week",
    });
    const last = await expectOk(
      call("POST", `/v1/subscriptions/${sub.id}/action/?do=extend`, { token: t.partnerKey }),
    );
    await expectOk(
      call("POST", `/v1/subscriptions/${last.id}/action/?do=auto_renew`, {
        token: t.partnerKey,
        body: { auto_renew: true },
      }),
    );
    const grouped = async () =>
      (
        await expectOk(call("GET", "/v1/groupedsubscriptions/?resource=mem", { token: t.partnerKey }))
      ).objects.find((g: { id: string }) => g.id === sub.id).auto_renew;
    expect(await grouped()).toBe(true);
    await expectOk(
      call("POST", `/v1/subscriptions/${sub.id}/action/?do=auto_renew`, { token: t.partnerKey }),
    );
    expect(await grouped()).toBe(false);
    expect((await read(t, last.id)).auto_renew).toBe(false);
  });

  it("gives a renewal bought while auto_renew was turned off the chain's new flag", async () => {
    const t = await setup();
    const y = nextYear();
    const sub = await buyOne(t, {
      resource: "mem",
      amount: 1,
      start_time: noon(y, 6, 1).toISOString(),
      period: "1 week",
      auto_renew: true,
    });
    const at = new Date(Date.parse(sub.end_time) - 60_000);
    // The consumer's first step: the renewal planned, its place reserved; then the client's PATCH.
    const plan = await subscriptionObject(env, sub.id).planRenewal(
      { subscription: uuidv7(), order: uuidv7() },
      at,
    );
    if (plan.step !== "renew") throw new Error(`planned ${plan.step}`);
    await expectOk(
      call("PATCH", `/v1/subscriptions/${sub.id}/`, { token: t.partnerKey, body: { auto_renew: false } }),
    );
    const renewed = await extend(env, partnerScope(plan.record.partnerId), sub.id, {}, plan.ids, at, {
      from: plan.record,
      chargeKind: "renewal",
    });
    expect(renewed.autoRenew).toBe(false);
    // So the term renewed last does not renew again.
    await deliver([
      {
        subscription: renewed.id,
        at: new Date(Date.parse(renewed.endTime as string) - 60_000).toISOString(),
      },
    ]);
    const charges = await expectOk(call("GET", "/v1/charges", { token: t.partnerKey }));
    expect(charges.objects.filter((c: { kind: string }) => c.kind === "renewal")).toHaveLength(1);
  });

  it("leaves alone what was cancelled or extended by hand before the run, and depletables", async () => {
    const t = await setup();
    const y = nextYear();
    const start = noon(y, 8, 1).toISOString();
    const cancelled = await buyOne(t, {
      resource: "cpu",
      amount: 1,
      start_time: start,
      period: "1 week",
      auto_renew: true,
    });
    const extended = await buyOne(t, {
      resource: "cpu",
      amount: 1,
      start_time: start,
      period: "1 week",
      auto_renew: true,
    });
    const tx = await buyOne(t, { resource: "tx", amount: 5 });
    await expectOk(call("DELETE", `/v1/subscriptions/${cancelled.id}/`, { token: t.partnerKey }));
    const byHand = await expectOk(
      call("POST", `/v1/subscriptions/${extended.id}/action/?do=extend`, { token: t.partnerKey }),
    );
    const result = await deliver([
      { subscription: cancelled.id, at: cancelled.end_time },
      { subscription: extended.id, at: extended.end_time },
      { subscription: tx.id, at: cancelled.end_time },
    ]);
    expect(result.explicitAcks).toHaveLength(3);
    expect((await read(t, cancelled.id)).descendants).toEqual([]);
    expect((await read(t, extended.id)).descendants).toEqual([byHand.id]);
    expect(await read(t, tx.id)).toMatchObject({ ended_at: null, remaining: 5 });
  });
});

describe("renewals whose every delivery died", () => {
  afterEach(() => disarmFaults());

  for (const step of [
    "renewal.planned",
    "purchase.issued",
    "purchase.created",
    "purchase.ordered",
  ] as const) {
    it(`a renewal that died at ${step} is settled, found again by the next run, and renewed once`, async () => {
      const t = await setup();
      const y = nextYear();
      const sub = await buyOne(t, {
        resource: "cpu",
        amount: 2,
        start_time: noon(y, 2, 1).toISOString(),
        period: "1 month",
        auto_renew: true,
      });
      const at = new Date(Date.parse(sub.end_time) - 60_000);
      armFault(step);
      expect((await deliver([{ subscription: sub.id, at: at.toISOString() }])).retryMessages).toHaveLength(1);
      // The message is never delivered again. Recovery settles what the dead renewal held…
      await recoverAll(t);
      // …and the next run finds the subscription again unless the renewal had already taken effect.
      const due = await dueBy(new Date(at.getTime() + HORIZON_MS));
      const again = due.some((d) => d.id === sub.id);
      // A renewal is one subscription: its order landed with it, so it took effect at purchase.created.
      expect(again).toBe(step !== "purchase.ordered" && step !== "purchase.created");
      if (again) await deliver([{ subscription: sub.id, at: at.toISOString() }]);
      const root = await read(t, sub.id);
      expect(root.descendants).toHaveLength(1);
      expect((await read(t, root.descendants[0])).status).not.toBe("expired");
      expect(await usageOf(t, 0, "cpu")).toMatchObject({ usage: 2, pending: 0 });
      await expectBooksBalance(t);
    });
  }

  it("an extension whose request died after reserving its place does not block the chain", async () => {
    const t = await setup();
    const y = nextYear();
    const sub = await buyOne(t, {
      resource: "cpu",
      amount: 1,
      start_time: noon(y, 2, 1).toISOString(),
      period: "1 month",
      auto_renew: true,
    });
    const stub = subscriptionShard(env, sub.id);
    const record = await subscriptionObject(env, sub.id).get();
    if (!record) throw new Error("no record");
    // As a request leaves it that reserved the place and died before creating the extension.
    await runInDurableObject(stub, async (_object, state) => {
      const reservedAt = new Date(Date.now() - 86_400_000).toISOString();
      const body = { ...record, nextId: crypto.randomUUID(), nextReservedAt: reservedAt };
      state.storage.sql.exec("UPDATE records SET body = ? WHERE id = ?", JSON.stringify(body), sub.id);
    });
    await evictDurableObject(stub);
    const extended = await expectOk(
      call("POST", `/v1/subscriptions/${sub.id}/action/?do=extend`, { token: t.partnerKey, body: {} }),
    );
    expect(extended.start_time).toBe(sub.end_time);
    expect((await read(t, sub.id)).descendants).toEqual([extended.id]);
    await expectBooksBalance(t);
  });
});

describe("the cron's scan for due terms", () => {
  it("walks the index of terms that can be due only, on every page, never the terms that ended or were followed", async () => {
    const index = await env.DB.prepare(
      "SELECT sql FROM sqlite_master WHERE name = 'subscriptions_due'",
    ).first<{
      sql: string;
    }>();
    expect(index?.sql).toMatch(/WHERE ended_at is null and followed = 0$/i);
    const before = new Date(Date.UTC(2040, 0, 1));
    for (const after of [
      null,
      { endTime: "2030-01-01T12:00:00.000Z", id: "0190f2a0-0000-7000-8000-000000000000" },
    ]) {
      const { sql, params } = claimQuery(env, before, before, before, after, 500).toSQL();
      const plan = (
        await env.DB.prepare(`EXPLAIN QUERY PLAN ${sql}`)
          .bind(...params)
          .all<{ detail: string }>()
      ).results.map((r) => r.detail);
      // The page walks the partial index; each of its rows is then marked by its primary key.
      expect(plan.join("; ")).toMatch(/SEARCH subscriptions USING INDEX subscriptions_due\b/);
      expect(plan[0], plan.join("; ")).toMatch(
        /USING (COVERING )?INDEX sqlite_autoindex_subscriptions_1 \(id=\?\)/,
      );
      expect(plan.join("; ")).not.toMatch(/TEMP B-TREE|SCAN subscriptions\b(?! USING)/);
    }
  });
});
