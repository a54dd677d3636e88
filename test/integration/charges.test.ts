import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import type { RenewalMessage } from "../../src/app/renewals";
import { abandon } from "../../src/app/subscriptions";
import { findOrders, insertOrders } from "../../src/db/orders";
import { armFault, disarmFaults } from "../../src/domain/faults";
import worker from "../../src/index";
import { expectBooksBalance, purchaseDiedAt, recoverAll } from "../books";
import {
  call,
  eventually,
  expectOk,
  syndicatedProduct,
  type Tenant,
  tenantWithCatalog,
  unique,
} from "../helpers";

/** The charges ledger and monthly statements, through the Worker. */

afterEach(() => disarmFaults());

beforeAll(() => {
  // The vendors' endpoints (hosts under .example) answer every event 204, for the whole file: their
  // events are still being delivered while later tests run.
  const realFetch = globalThis.fetch;
  vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
    const request = new Request(input as RequestInfo, init);
    if (new URL(request.url).host.endsWith(".example")) return new Response(null, { status: 204 });
    return realFetch(input as RequestInfo, init);
  });
});
afterAll(async () => {
  // Events still on their way (a MODIFIED after the vendor's report) are delivered first.
  await eventually(async () => {
    const pending = await env.DB.prepare(
      "SELECT count(*) AS n FROM webhook_deliveries WHERE status = 'pending'",
    ).first<{ n: number }>();
    return pending?.n === 0 ? true : undefined;
  }, "the events delivered");
  vi.restoreAllMocks();
});

const setup = (customers = 2) => tenantWithCatalog(customers);

const buy = (t: Tenant, objects: unknown[], headers: Record<string, string> = {}) =>
  call("POST", "/v1/subscriptions/", { token: t.partnerKey, body: { objects }, headers });

/** A decimal EUR string in cents, exactly. */
const cents = (decimal: string) => {
  const [whole = "0", fraction = ""] = decimal.replace("-", "").split(".");
  const magnitude = BigInt(whole) * 100n + BigInt(fraction.padEnd(2, "0"));
  return decimal.startsWith("-") ? -magnitude : magnitude;
};
const sum = (lines: { amount: string }[]) => lines.reduce((n, l) => n + cents(l.amount), 0n);

/** Every line a query answers, following the cursor `limit` lines at a time. */
async function allLines(token: string, query: string, limit = 500) {
  const lines: any[] = [];
  let cursor: string | null = null;
  for (let pages = 0; pages < 100; pages++) {
    const page: any = await expectOk(
      call("GET", `/v1/charges?${query}&limit=${limit}${cursor ? `&cursor=${cursor}` : ""}`, { token }),
    );
    lines.push(...page.objects);
    cursor = page.meta.next_cursor;
    if (!cursor) return lines;
  }
  throw new Error("too many pages");
}

const thisMonth = () => new Date().toISOString().slice(0, 7);

describe("the ledger", () => {
  it("writes one line per subscription a purchase buys, summing to its total price, each on its order line", async () => {
    const t = await setup();
    const r = await buy(t, [
      { customer: t.customers[0], resource: "cpu", amount: 4, period: "1 week" },
      { customer: t.customers[0], resource: "ip", amount: 3, period: "1 month" },
      { customer: t.customers[1], resource: "tx", amount: 7 },
    ]);
    expect(r.status, r.text).toBe(201);
    const subs = r.body.objects as any[];
    expect(subs).toHaveLength(5);
    const lines = await allLines(t.partnerKey, "");
    expect(lines).toHaveLength(5);
    expect(sum(lines)).toBe(cents(r.body.meta.total_price));
    for (const sub of subs) {
      const line = lines.find((l) => l.subscription === sub.id);
      expect(line).toEqual({
        id: `purchase:${sub.id}`,
        kind: "purchase",
        partner: t.partnerId,
        customer: sub.customer,
        subscription: sub.id,
        order: sub.order,
        product: sub.product,
        quantity: sub.amount,
        unit_price: { cpu: "0.02", ip: "0.10", tx: "0.05" }[sub.product as string],
        period_start: sub.start_time,
        period_end: sub.end_time,
        seconds: null,
        amount: sub.price,
        currency: "EUR",
        created_at: expect.any(String),
        month: expect.stringMatching(/^\d{4}-\d{2}$/),
      });
    }
    // Each order line names its charge line, in the purchase's answer and when read back.
    for (const order of r.body.meta.orders) {
      for (const line of order.lines) expect(line.charge).toBe(`purchase:${line.subscription}`);
      const read = await expectOk(call("GET", `/v1/orders/${order.id}`, { token: t.partnerKey }));
      expect(read.lines.map((l: any) => l.charge)).toEqual(order.lines.map((l: any) => l.charge));
    }
    await expectBooksBalance(t);
  });

  it("writes one line for an extension, as an extension", async () => {
    const t = await setup(1);
    const bought = await expectOk(
      buy(t, [{ customer: t.customers[0], resource: "mem", amount: 2, period: "1 month" }]),
      201,
    );
    const base = bought.objects[0];
    const extension = await expectOk(
      call("POST", `/v1/subscriptions/${base.id}/action/?do=extend`, { token: t.partnerKey, body: {} }),
    );
    const lines = await allLines(t.partnerKey, `subscription=${extension.id}`);
    expect(lines).toEqual([
      expect.objectContaining({
        id: `purchase:${extension.id}`,
        kind: "extension",
        order: extension.order,
        amount: extension.price,
        period_start: extension.start_time,
        period_end: extension.end_time,
      }),
    ]);
    expect(await allLines(t.partnerKey, `customer=${t.customers[0]}`)).toHaveLength(2);
    await expectBooksBalance(t);
  });

  it("keeps a prepaid term's line, unreversed, when the term is cancelled in its course or before it begins", async () => {
    const t = await setup(1);
    const soon = new Date(Date.now() + 10 * 86_400_000).toISOString();
    const bought = await expectOk(
      buy(t, [
        { customer: t.customers[0], resource: "cpu", amount: 2, period: "1 week" },
        { customer: t.customers[0], resource: "mem", amount: 1, start_time: soon, period: "1 week" },
      ]),
      201,
    );
    const [running, future] = bought.objects;
    const extension = await expectOk(
      call("POST", `/v1/subscriptions/${running.id}/action/?do=extend`, { token: t.partnerKey, body: {} }),
    );
    const before = await allLines(t.partnerKey, `customer=${t.customers[0]}`);
    expect(before).toHaveLength(3);
    for (const id of [future.id, extension.id, running.id]) {
      await expectOk(call("DELETE", `/v1/subscriptions/${id}/`, { token: t.partnerKey }));
    }
    const after = await allLines(t.partnerKey, `customer=${t.customers[0]}`);
    expect(after).toEqual(before);
    expect(after.map((l) => l.kind).sort()).toEqual(["extension", "purchase", "purchase"]);
    expect(sum(after)).toBe(cents(bought.meta.total_price) + cents(extension.price));
    await expectBooksBalance(t);
  });

  it("writes one line for a renewal, and none more when its message is delivered again", async () => {
    const t = await setup(1);
    const start = new Date(Date.now() + 30 * 86_400_000);
    start.setUTCHours(12, 0, 0, 0);
    const bought = await expectOk(
      buy(t, [
        {
          customer: t.customers[0],
          resource: "dssd",
          amount: 5,
          start_time: start.toISOString(),
          period: "1 week",
          auto_renew: true,
        },
      ]),
      201,
    );
    const sub = bought.objects[0];
    const message = { subscription: sub.id, at: new Date(Date.parse(sub.end_time) - 60_000).toISOString() };
    for (let i = 0; i < 2; i++) {
      const batch = createMessageBatch<RenewalMessage>("stratus-renewals", [
        { id: `renewal-${i}-${sub.id}`, timestamp: new Date(), attempts: 1, body: message },
      ]);
      await worker.queue(batch, env);
      expect((await getQueueResult(batch, createExecutionContext())).explicitAcks).toHaveLength(1);
    }
    const root = await expectOk(call("GET", `/v1/subscriptions/${sub.id}/`, { token: t.partnerKey }));
    expect(root.descendants).toHaveLength(1);
    const renewal = await expectOk(
      call("GET", `/v1/subscriptions/${root.descendants[0]}/`, { token: t.partnerKey }),
    );
    const lines = await allLines(t.partnerKey, `customer=${t.customers[0]}`);
    expect(lines.map((l) => [l.id, l.kind, l.amount])).toEqual([
      [`purchase:${sub.id}`, "purchase", sub.price],
      [`purchase:${renewal.id}`, "renewal", renewal.price],
    ]);
    await expectBooksBalance(t);
  });

  it("writes nothing twice when a keyed purchase is retried, even after its first attempt died", async () => {
    const t = await setup(1);
    const key = unique("key");
    const objects = [{ customer: t.customers[0], resource: "vlan", amount: 2, period: "1 month" }];
    armFault("purchase.accepted");
    expect((await buy(t, objects, { "idempotency-key": key })).status).toBe(500);
    const retry = await buy(t, objects, { "idempotency-key": key });
    expect(retry.status, retry.text).toBe(201);
    const again = await buy(t, objects, { "idempotency-key": key });
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    const lines = await allLines(t.partnerKey, "");
    expect(lines.map((l) => l.id).sort()).toEqual(
      retry.body.objects.map((s: any) => `purchase:${s.id}`).sort(),
    );
    expect(sum(lines)).toBe(cents(retry.body.meta.total_price));
    await expectBooksBalance(t);
  });

  it("reverses the lines of a purchase undone after they were written: its lines sum to 0", async () => {
    const t = await setup(1);
    // Dies after its orders (and lines) were written completed, before the accept: the request,
    // answering 500, undoes what its commission did not make final.
    armFault("purchase.ordered");
    const r = await buy(t, [{ customer: t.customers[0], resource: "cpu", amount: 2, period: "1 week" }]);
    expect(r.status).toBe(500);
    const lines = await allLines(t.partnerKey, "");
    expect(lines).toHaveLength(2);
    const [purchase, reversal] = lines;
    expect(purchase).toMatchObject({ kind: "purchase", id: `purchase:${purchase.subscription}` });
    expect(reversal).toMatchObject({
      kind: "reversal",
      id: `reversal:${purchase.subscription}`,
      subscription: purchase.subscription,
      order: purchase.order,
      amount: `-${purchase.amount}`,
    });
    expect(cents(purchase.amount)).toBeGreaterThan(0n);
    expect(sum(lines)).toBe(0n);
    const order = await expectOk(call("GET", `/v1/orders/${purchase.order}`, { token: t.partnerKey }));
    expect(order.state).toBe("failed");
    await expectBooksBalance(t);
  });
});

describe("a purchase whose request died after its orders", () => {
  /** Bought directly, dying once its orders (and lines) are written, before the accept. */
  async function diedAfterOrders(t: Tenant) {
    const { ids, planned } = await purchaseDiedAt(t, "purchase.ordered");
    return { id: ids.subscriptions[0] as string, ids, priceMinor: planned[0]?.priceMinor };
  }

  it("is reversed once when it is undone, however often the undoing runs", async () => {
    const t = await setup(1);
    const { id, ids } = await diedAfterOrders(t);
    expect((await allLines(t.partnerKey, "")).map((l) => l.id)).toEqual([`purchase:${id}`]);
    expect(await abandon(env, ids, new Date())).toBe("undone");
    expect(await abandon(env, ids, new Date())).toBe("undone");
    const lines = await allLines(t.partnerKey, `subscription=${id}`);
    expect(lines.map((l) => l.id)).toEqual([`purchase:${id}`, `reversal:${id}`]);
    expect(sum(lines)).toBe(0n);
    await expectBooksBalance(t);
  });

  it("charges nothing for orders its late request writes completed after the undo wrote them failed", async () => {
    // README, "Recovery": a request the sweep took for dead that writes its orders after the undo
    // leaves them failed, with no charge line (its insert keeps the row the undo wrote).
    const t = await setup(1);
    const { ids } = await purchaseDiedAt(t, "purchase.created", ["mem", "cpu"]);
    expect(await abandon(env, ids, new Date())).toBe("undone");
    const undone = await findOrders(env, Object.values(ids.orders));
    expect(undone.map((o) => o.state)).toEqual(["failed"]);
    await insertOrders(
      env,
      undone.map((o) => ({ ...o, state: "completed" as const })),
    );
    expect((await findOrders(env, Object.values(ids.orders))).map((o) => o.state)).toEqual(["failed"]);
    expect(await allLines(t.partnerKey, "")).toEqual([]);
    await expectBooksBalance(t);
  });

  it("keeps its line, unreversed, when the recovery sweep finds it took effect", async () => {
    const t = await setup(1);
    const { id, priceMinor } = await diedAfterOrders(t);
    await recoverAll(t);
    const lines = await allLines(t.partnerKey, "");
    expect(lines.map((l) => l.id)).toEqual([`purchase:${id}`]);
    expect(cents(lines[0].amount)).toBe(priceMinor);
    await expectBooksBalance(t);
  });
});

describe("a purchase that waits on its vendor", () => {
  async function syndicated() {
    const t = await setup(1);
    const { product, vendorId } = await syndicatedProduct(t);
    const token = await expectOk(
      call("POST", `/v1/vendors/${vendorId}/tokens`, { token: t.operator, body: {} }),
      201,
    );
    const r = await buy(t, [{ customer: t.customers[0], resource: product, amount: 2, period: "1 month" }]);
    expect(r.status, r.text).toBe(202);
    // The operation runs from the queue and leaves its order pending until the vendor reports.
    const order = await eventually(async () => {
      const page = await expectOk(call("GET", "/v1/orders", { token: t.partnerKey }));
      return page.objects[0];
    }, "the pending order");
    expect(order.state).toBe("pending");
    return { t, order, vendorToken: token.token as string, location: r.headers.get("location") as string };
  }

  for (const [status, lines] of [
    ["DEPLOYED", 1],
    ["FAILED", 0],
  ] as const) {
    it(`writes its line only when it completes: the vendor reports ${status}`, async () => {
      const { t, order, vendorToken, location } = await syndicated();
      const id = order.lines[0].subscription;
      expect(await allLines(t.partnerKey, "")).toEqual([]);
      const patched = await call("PATCH", `/api/subscription/${id}`, {
        token: vendorToken,
        body: { deploymentStatus: status },
      });
      expect(patched.status, patched.text).toBe(200);
      const op = await eventually(async () => {
        const r = await call("GET", location, { token: t.partnerKey });
        return r.status === 202 ? undefined : r;
      }, "the operation's end");
      expect(op.status).toBe(status === "DEPLOYED" ? 201 : 424);
      const written = await allLines(t.partnerKey, "");
      expect(written).toHaveLength(lines);
      if (lines) {
        // Its term starts when deployed: the order line says the term and price it got.
        const completed = await expectOk(call("GET", `/v1/orders/${order.id}`, { token: t.partnerKey }));
        expect(completed.state).toBe("completed");
        expect(written[0]).toMatchObject({
          id: `purchase:${id}`,
          kind: "purchase",
          order: order.id,
          amount: completed.lines[0].price,
        });
      }
      await expectBooksBalance(t);
    });
  }
});

describe("statements", () => {
  it("gives a month's lines oldest first, paged, with its totals; a past month is closed", async () => {
    const t = await setup();
    const first = await expectOk(
      buy(t, [{ customer: t.customers[0], resource: "ip", amount: 3, period: "1 month" }]),
      201,
    );
    const second = await expectOk(
      buy(t, [
        { customer: t.customers[0], resource: "cpu", amount: 1, period: "1 day" },
        { customer: t.customers[1], resource: "mem", amount: 1, period: "1 day" },
      ]),
      201,
    );
    const month = thisMonth();
    const path = `/v1/customers/${t.customers[0]}/statements/${month}`;
    const statement = await expectOk(call("GET", path, { token: t.partnerKey }));
    const own = [...first.objects, second.objects[0]];
    const total = own.reduce((n: bigint, s: any) => n + cents(s.price), 0n);
    expect(statement).toMatchObject({
      customer: t.customers[0],
      month,
      start: `${month}-01T00:00:00.000Z`,
      closed: false,
      line_count: 4,
      meta: { limit: 50, next_cursor: null, total_count: 4 },
    });
    expect(cents(statement.totals.EUR)).toBe(total);
    expect(Object.keys(statement.totals)).toEqual(["EUR"]);
    expect(statement.objects.map((l: any) => l.subscription).sort()).toEqual(
      own.map((s: any) => s.id).sort(),
    );
    // Two lines a page: every line once, the totals the same on every page.
    const paged: any[] = [];
    let cursor: string | null = null;
    do {
      const page: any = await expectOk(
        call("GET", `${path}?limit=2${cursor ? `&cursor=${cursor}` : ""}`, { token: t.partnerKey }),
      );
      expect(page.totals).toEqual(statement.totals);
      paged.push(...page.objects);
      cursor = page.meta.next_cursor;
    } while (cursor);
    expect(paged).toEqual(statement.objects);
    // The operator reads it too; a past month is closed (and here empty).
    expect(await expectOk(call("GET", path, { token: t.operator }))).toEqual(statement);
    const past = await expectOk(
      call("GET", `/v1/customers/${t.customers[0]}/statements/2020-02`, { token: t.partnerKey }),
    );
    expect(past).toMatchObject({
      month: "2020-02",
      start: "2020-02-01T00:00:00.000Z",
      end: "2020-03-01T00:00:00.000Z",
      closed: true,
      totals: {},
      line_count: 0,
      objects: [],
    });
    const december = await expectOk(
      call("GET", `/v1/customers/${t.customers[0]}/statements/2099-12`, { token: t.partnerKey }),
    );
    expect(december).toMatchObject({ end: "2100-01-01T00:00:00.000Z", closed: false });
  });

  it("totals a month exactly past SQLite's 64 bits, and refuses a price past the safe integers", async () => {
    const t = await setup(1);
    const customer = t.customers[0]!;
    // Three lines of ~4e18 minor units: their sum is past 2^63, where SQLite's sum() fails.
    const big = 4_000_000_000_000_000_123n;
    const month = "2098-05";
    for (const i of [1, 2, 3]) {
      await env.DB.prepare(
        `INSERT INTO charges (key, partner_id, customer_id, subscription_id, kind, product, quantity,
          amount_minor, currency, month) VALUES (?, ?, ?, ?, 'purchase', 'cpu', 1, CAST(? AS INTEGER), 'EUR', ?)`,
      )
        .bind(`test:big:${customer}:${i}`, t.partnerId, customer, crypto.randomUUID(), String(big), month)
        .run();
    }
    const statement = await expectOk(
      call("GET", `/v1/customers/${customer}/statements/${month}`, { token: t.partnerKey }),
    );
    expect(cents(statement.totals.EUR)).toBe(3n * big);
    // One term past 2^53 − 1 minor units would be charged and stored inexactly: refused, nothing bought.
    const before = await expectOk(call("GET", "/v1/subscriptions/", { token: t.partnerKey }));
    const one = await buy(t, [{ customer, resource: "cpu", amount: 999_999_999_999, period: "10 years" }]);
    expect(one.status).toBe(400);
    expect(one.body.errors).toEqual([
      { point: "/objects/0/amount", message: expect.stringContaining("minor units") },
    ]);
    // Each term within it, but the purchase past it.
    const two = await buy(t, [
      { customer, resource: "cpu", amount: 30_000_000_000, period: "10 years" },
      { customer, resource: "cpu", amount: 30_000_000_000, period: "10 years" },
    ]);
    expect(two.status).toBe(400);
    expect(two.body.errors).toEqual([
      { point: "/objects", message: expect.stringContaining("the purchase costs") },
    ]);
    const quote = await call("POST", "/v1/subscriptioncalculator/", {
      token: t.partnerKey,
      body: { objects: [{ resource: "cpu", amount: 999_999_999_999, period: "10 years" }] },
    });
    expect(quote.status).toBe(400);
    expect(await expectOk(call("GET", "/v1/subscriptions/", { token: t.partnerKey }))).toEqual(before);
  });

  it("answers 400 for a month that is not YYYY-MM, naming it, and 404 for another partner's customer", async () => {
    const t = await setup(1);
    const other = await setup(1);
    for (const month of ["2027-13", "2027-00", "2027-1", "abc", "2027-01-01", "27-01", "9999-12"]) {
      const r = await call("GET", `/v1/customers/${t.customers[0]}/statements/${month}`, {
        token: t.partnerKey,
      });
      expect(r.status, month).toBe(400);
      expect(r.headers.get("content-type")).toMatch(/application\/problem\+json/);
      expect(r.body.errors).toEqual([{ point: "/month", message: expect.any(String) }]);
    }
    const foreign = await call("GET", `/v1/customers/${other.customers[0]}/statements/${thisMonth()}`, {
      token: t.partnerKey,
    });
    expect(foreign.status).toBe(404);
    const unknown = await call("GET", `/v1/customers/${crypto.randomUUID()}/statements/${thisMonth()}`, {
      token: t.partnerKey,
    });
    expect(unknown.status).toBe(404);
    // A user token reads quotas only; the customer's own key (an account's) reads its statement.
    const user = await call("GET", `/v1/customers/${t.customers[0]}/statements/${thisMonth()}`, {
      token: t.userTokens[0],
    });
    expect(user.status).toBe(403);
    const key = await expectOk(
      call("POST", `/v1/customers/${t.customers[0]}/api-keys`, { token: t.partnerKey, body: {} }),
      201,
    );
    const own = await call("GET", `/v1/customers/${t.customers[0]}/statements/${thisMonth()}`, {
      token: key.token,
    });
    expect(own.status, own.text).toBe(200);
    const another = await call("GET", `/v1/customers/${other.customers[0]}/statements/${thisMonth()}`, {
      token: key.token,
    });
    expect(another.status).toBe(404);
  });
});

describe("listing charges", () => {
  it("filters by customer, subscription and time, pages, and never shows another partner's lines", async () => {
    const t = await setup();
    const other = await setup(1);
    const bought = await expectOk(
      buy(t, [
        { customer: t.customers[0], resource: "ip", amount: 4, period: "1 week" },
        { customer: t.customers[1], resource: "cpu", amount: 2, period: "1 week" },
      ]),
      201,
    );
    const theirs = await expectOk(
      buy(other, [{ customer: other.customers[0], resource: "mem", amount: 1, period: "1 week" }]),
      201,
    );
    const all = await allLines(t.partnerKey, "");
    expect(all).toHaveLength(5);
    expect(all.every((l) => l.partner === t.partnerId)).toBe(true);
    // Oldest first, ties by key; paged two at a time, the same lines in the same order.
    const sorted = [...all].sort((a, b) =>
      a.created_at === b.created_at ? (a.id < b.id ? -1 : 1) : a.created_at < b.created_at ? -1 : 1,
    );
    expect(all).toEqual(sorted);
    expect(await allLines(t.partnerKey, "", 2)).toEqual(all);
    const first = await expectOk(call("GET", "/v1/charges?limit=2", { token: t.partnerKey }));
    expect(first.objects).toHaveLength(2);
    expect(first.meta).toEqual({ limit: 2, next_cursor: expect.any(String) });

    expect(await allLines(t.partnerKey, `customer=${t.customers[0]}`)).toHaveLength(4);
    const cpu = bought.objects.find((s: any) => s.product === "cpu");
    expect((await allLines(t.partnerKey, `subscription=${cpu.id}`)).map((l) => l.id)).toEqual([
      `purchase:${cpu.id}`,
    ]);
    // Another partner's customer or subscription, or one that does not exist: an empty page.
    for (const query of [
      `customer=${other.customers[0]}`,
      `subscription=${theirs.objects[0].id}`,
      `customer=${crypto.randomUUID()}`,
    ]) {
      const page = await expectOk(call("GET", `/v1/charges?${query}`, { token: t.partnerKey }));
      expect(page, query).toEqual({ objects: [], meta: { limit: 50, next_cursor: null } });
    }
    // since is inclusive, until exclusive.
    const oldest = all[0].created_at;
    const newest = all.at(-1).created_at;
    expect(await allLines(t.partnerKey, `since=${oldest}`)).toHaveLength(5);
    expect(await allLines(t.partnerKey, `until=${oldest}`)).toHaveLength(0);
    const later = new Date(Date.parse(newest) + 1).toISOString();
    expect(await allLines(t.partnerKey, `since=${later}`)).toHaveLength(0);
    expect(await allLines(t.partnerKey, `since=${oldest}&until=${later}`)).toHaveLength(5);
    // Times are UTC unless they name a zone: a date alone is its midnight, a zone-less time is UTC.
    expect(await allLines(t.partnerKey, `since=${oldest.slice(0, -1)}`)).toHaveLength(5);
    expect(await allLines(t.partnerKey, `until=${oldest.slice(0, -1)}`)).toHaveLength(0);
    expect(await allLines(t.partnerKey, "until=2999-01-01")).toHaveLength(5);
    expect(await allLines(t.partnerKey, "since=2999-01-01")).toHaveLength(0);
    // Year 10000 (the end of 9999 in a zone behind UTC) is no time this API compares: 400.
    for (const field of ["since", "until"]) {
      const r = await call("GET", `/v1/charges?${field}=9999-12-31T23:00:00-02:00`, { token: t.partnerKey });
      expect(r.status, field).toBe(400);
      expect(r.body.errors[0].point, field).toBe(`/${field}`);
    }
    // A zone's `+`, encoded or not (unencoded, a query string reads it as a space).
    const inParis = (iso: string) =>
      `${new Date(Date.parse(iso) + 3_600_000).toISOString().slice(0, 19)}+01:00`;
    expect(await allLines(t.partnerKey, `since=${encodeURIComponent(inParis(oldest))}`)).toHaveLength(5);
    expect(await allLines(t.partnerKey, `since=${inParis(oldest)}`)).toHaveLength(5);
    const afterAll = new Date(Date.parse(newest) + 2000).toISOString();
    expect(await allLines(t.partnerKey, `since=${inParis(afterAll)}`)).toHaveLength(0);

    // The operator sees every partner's lines, and filters them the same way.
    const operatorView = await allLines(t.operator, `customer=${other.customers[0]}`);
    expect(operatorView.map((l) => l.id)).toEqual([`purchase:${theirs.objects[0].id}`]);
    const everything = await allLines(t.operator, `since=${oldest}`);
    expect(everything.filter((l) => l.partner === t.partnerId)).toEqual(all);
    expect(everything.some((l) => l.partner === other.partnerId)).toBe(true);
  });

  it("refuses since after until, bad limits, cursors and timestamps, naming the field", async () => {
    const t = await setup(1);
    const cases: [string, string][] = [
      ["since=2027-02-01T00:00:00Z&until=2027-01-01T00:00:00Z", "/since"],
      ["since=yesterday", "/since"],
      ["until=2027-01-32", "/until"],
      ["until=2027-01-01T10:00:00%2B99:00", "/until"],
      ["offset=-1", "/offset"],
      ["limit=501", "/limit"],
      ["cursor=bm9zcGFjZQ", "/cursor"],
      ["customer=nope", "/customer"],
    ];
    for (const [query, point] of cases) {
      const r = await call("GET", `/v1/charges?${query}`, { token: t.partnerKey });
      expect(r.status, query).toBe(400);
      expect(r.body.errors?.[0]?.point, query).toBe(point);
    }
    const equal = await call("GET", "/v1/charges?since=2027-01-01T00:00:00Z&until=2027-01-01T00:00:00Z", {
      token: t.partnerKey,
    });
    expect(equal.status).toBe(200);
    expect(equal.body.objects).toEqual([]);
  });

  it("is in the OpenAPI document", async () => {
    const doc = await expectOk(call("GET", "/openapi.json"));
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(["/v1/charges", "/v1/customers/{id}/statements/{month}"]),
    );
  });
});
