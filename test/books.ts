import {
  createExecutionContext,
  createMessageBatch,
  getQueueResult,
  runDurableObjectAlarm,
} from "cloudflare:test";
import { env } from "cloudflare:workers";
import { expect, vi } from "vitest";
import { requeueStalledOperations } from "../src/app/operations";
import { assignIds, buy, plan } from "../src/app/subscriptions";
import { createOperation, startOperation } from "../src/db/operations";
import { armFault, disarmFaults, type FaultStep } from "../src/domain/faults";
import { isRunning } from "../src/domain/metering";
import type { PurchaseObject } from "../src/domain/purchase";
import { recoveryBoundMs } from "../src/domain/recovery";
import { money, type SubscriptionRecord } from "../src/domain/subscriptions";
import { meteredCharge, usageLines } from "../src/domain/usage";
import worker from "../src/index";
import type { OperationMessage } from "../src/objects/operations-queue";
import { ledgerOf } from "../src/objects/quota-ledger";
import { subscriptionObject, subscriptionShard } from "../src/objects/subscription-object";
import { call, expectOk, type Tenant } from "./helpers";

/**
 * The books of a tenant, read back and checked: the invariants the README states for money and
 * quota. Used after every injected fault, once recovery has run.
 */

let delivered = 0;

/** Delivers messages to the Worker's operations queue handler, as the queue would: what it acked and retried. */
export async function runOperationsQueue(bodies: OperationMessage[]) {
  const batch = createMessageBatch<OperationMessage>(
    "stratus-operations",
    bodies.map((body) => ({ id: `books-${delivered++}`, timestamp: new Date(), attempts: 1, body })),
  );
  const ctx = createExecutionContext();
  await worker.queue(batch, env);
  return getQueueResult(batch, ctx);
}

/** Delivers messages to the operations queue handler, which must ack them all. */
export async function deliver(bodies: OperationMessage[]): Promise<void> {
  if (bodies.length === 0) return;
  expect((await runOperationsQueue(bodies)).retryMessages).toEqual([]);
}

/**
 * Runs every recovery as if its bound had passed: each subscription's alarm (which finishes a
 * quota step left open, and pushes a commit whose push died), each customer's ledger sweep (its
 * recovery messages delivered at once), then the stalled operations, queued again and run.
 */
export async function recoverAll(t: Tenant): Promise<void> {
  const later = Date.now() + recoveryBoundMs(env) + 1_000;
  const subscriptions = await env.DB.prepare("SELECT id FROM subscriptions WHERE partner_id = ?")
    .bind(t.partnerId)
    .all<{ id: string }>();
  // The alarms run on a clock past the bound: a place reserved for an extension whose request died
  // before it existed counts as abandoned then (and the chain's hold is released if nothing is
  // live), and every check that a commit was pushed is due.
  vi.useFakeTimers({ toFake: ["Date"], now: later });
  try {
    for (const { id } of subscriptions.results) await runDurableObjectAlarm(subscriptionShard(env, id));
  } finally {
    vi.useRealTimers();
  }
  for (let round = 0; round < 3; round++) {
    const asked = (await Promise.all(t.customers.map((c) => ledgerOf(env, c).sweep(later)))).flat();
    await deliver(asked.map((recover) => ({ recover })));
    const stalled = await env.DB.prepare(
      "SELECT op_ref FROM operations WHERE partner_id = ? AND status IN ('queued', 'running') AND waiting = 0",
    )
      .bind(t.partnerId)
      .all<{ op_ref: string }>();
    await requeueStalledOperations(env, new Date(later));
    await deliver(stalled.results.map((r) => ({ opRef: r.op_ref })));
    if (asked.length === 0 && stalled.results.length === 0) return;
  }
}

interface Line {
  subscription: string;
}

/**
 * Checks, for every customer of `t`: usage of each `stratus.*` resource equals, over its live
 * chains, each chain's amount once; nothing is pending, every subscription is on exactly one order (whose
 * state agrees with it), no order is left pending (also one none of whose subscriptions exists),
 * and no operation is left queued or running.
 */
export async function expectBooksBalance(t: Tenant): Promise<void> {
  const rows = await env.DB.prepare("SELECT id FROM subscriptions WHERE partner_id = ?")
    .bind(t.partnerId)
    .all<{ id: string }>();
  const orders = await env.DB.prepare("SELECT id, state, lines FROM orders WHERE partner_id = ?")
    .bind(t.partnerId)
    .all<{ id: string; state: string; lines: string }>();
  for (const order of orders.results) expect(order.state, `order ${order.id} is settled`).not.toBe("pending");
  const orderOf = new Map<string, { id: string; state: string }[]>();
  for (const order of orders.results) {
    for (const line of JSON.parse(order.lines) as Line[]) {
      orderOf.set(line.subscription, [...(orderOf.get(line.subscription) ?? []), order]);
    }
  }
  // A chain holds its amount once (README, "Quota held once per chain"): each hold, named by the
  // term whose purchase took it, counts while one of its terms has not ended and none released it.
  const holds = new Map<string, { key: string; amount: number; live: boolean; released: boolean }>();
  const records = new Map<string, SubscriptionRecord>();
  for (const { id } of rows.results) {
    const r = await subscriptionObject(env, id).get();
    expect(r, `subscription ${id} has an object`).not.toBeNull();
    if (r) records.set(id, r);
  }
  for (const r of records.values()) {
    const { id } = r;
    // Nothing bought follows a term that never was: an undone purchase leaves no extension,
    // renewal or hold behind it (README, "Recovery").
    if (r.endReason !== "failed") {
      for (const before of [r.previousId, r.heldBy]) {
        if (before) expect(records.get(before)?.endReason, `${id} follows ${before}`).not.toBe("failed");
      }
    }
    // An undone renewal attempt is not a refusal: an auto-renewing term expires only with a reason.
    if (r.endReason === "expired" && r.autoRenew && r.nextId === null) {
      expect(r.renewalError, `auto-renewing ${id} expired without renewing`).not.toBeNull();
    }
    const onOrders = orderOf.get(id) ?? [];
    // A purchase undone before it wrote its orders has none; any other is on exactly one.
    if (r.endReason === "failed") {
      expect(onOrders.length, `failed ${id} is on at most one order`).toBeLessThanOrEqual(1);
      for (const order of onOrders) expect(order.state, `failed ${id}'s order`).toBe("failed");
    } else {
      expect(onOrders.length, `subscription ${id} is on exactly one order`).toBe(1);
      expect(onOrders[0]?.state, `bought ${id}'s order`).toBe("completed");
    }
    const hold = holds.get(r.heldBy ?? r.id) ?? {
      key: `${r.customerId} ${r.quotaResource}`,
      amount: r.amount,
      live: false,
      released: false,
    };
    hold.live ||= r.endedAt === null;
    hold.released ||= r.holdReleased === true;
    holds.set(r.heldBy ?? r.id, hold);
  }
  const held = new Map<string, number>();
  for (const hold of holds.values()) {
    if (hold.live && !hold.released) held.set(hold.key, (held.get(hold.key) ?? 0) + hold.amount);
  }
  for (const [i, customer] of t.customers.entries()) {
    const q = await expectOk(call("GET", "/account/v1.0/quotas", { token: t.userTokens[i] }));
    for (const [resource, holding] of Object.entries(
      q.system as Record<string, { usage: number; pending: number }>,
    )) {
      if (!resource.startsWith("stratus.")) continue;
      expect(holding.pending, `${customer} ${resource} pending`).toBe(0);
      expect(holding.usage, `${customer} ${resource} usage`).toBe(held.get(`${customer} ${resource}`) ?? 0);
    }
  }
  const open = await env.DB.prepare(
    "SELECT count(*) AS n FROM operations WHERE partner_id = ? AND status IN ('queued', 'running') AND waiting = 0",
  )
    .bind(t.partnerId)
    .first<{ n: number }>();
  expect(open?.n, "operations left queued or running").toBe(0);
  expect(
    await wronglyFollowed(t.partnerId),
    "terms whose `followed` disagrees with the term after them",
  ).toEqual([]);
  await expectChargesBalance(t);
}

/**
 * A partner's terms whose `followed` (what keeps the cron's due index to terms that can be due)
 * is not what the due scan read before it was kept: a created term after it, live or expired.
 */
export async function wronglyFollowed(partnerId: string): Promise<string[]> {
  const rows = await env.DB.prepare(
    `SELECT id FROM subscriptions s WHERE partner_id = ? AND followed != EXISTS (
       SELECT 1 FROM subscriptions n WHERE n.id = s.next_id
         AND (n.ended_at IS NULL OR json_extract(n.body, '$.endReason') = 'expired'))`,
  )
    .bind(partnerId)
    .all<{ id: string }>();
  return rows.results.map((r) => r.id);
}

/**
 * The charges ledger of `t` agrees with its orders: each line of a completed order has exactly
 * one charge line (its key, its amount, its order); a failed order's lines were never written or
 * are reversed; a pending order has none; no line exists that no order line caused. So Σ a
 * subscription's prepaid lines is its price when bought, 0 when undone; its usage lines come on
 * top (`expectUsageBalance`).
 */
export async function expectChargesBalance(t: Tenant): Promise<void> {
  const orders = await env.DB.prepare("SELECT id, state, lines FROM orders WHERE partner_id = ?")
    .bind(t.partnerId)
    .all<{ id: string; state: string; lines: string }>();
  const charges = await env.DB.prepare(
    "SELECT key, kind, subscription_id, order_id, amount_minor FROM charges WHERE partner_id = ? AND kind != 'usage'",
  )
    .bind(t.partnerId)
    .all<{ key: string; kind: string; subscription_id: string; order_id: string; amount_minor: number }>();
  const bySubscription = new Map<string, typeof charges.results>();
  for (const c of charges.results) {
    bySubscription.set(c.subscription_id, [...(bySubscription.get(c.subscription_id) ?? []), c]);
  }
  const caused = new Set<string>();
  for (const order of orders.results) {
    for (const line of JSON.parse(order.lines) as Array<Line & { priceMinor: number; charge?: string }>) {
      const lines = bySubscription.get(line.subscription) ?? [];
      for (const c of lines) caused.add(c.key);
      const terms = lines.filter((c) => c.kind !== "reversal");
      const reversals = lines.filter((c) => c.kind === "reversal");
      const sum = lines.reduce((n, c) => n + c.amount_minor, 0);
      const what = `${order.state} order ${order.id}, subscription ${line.subscription}`;
      if (order.state === "pending") {
        expect(lines, `${what}: no charge line yet`).toEqual([]);
        continue;
      }
      expect(reversals.length, `${what}: at most one reversal`).toBeLessThanOrEqual(1);
      if (order.state === "completed") {
        expect(terms, `${what}: exactly one charge line`).toHaveLength(1);
        expect(terms[0], `${what}: its charge line`).toMatchObject({
          key: line.charge ?? `purchase:${line.subscription}`,
          order_id: order.id,
          amount_minor: line.priceMinor,
        });
        expect(reversals, `${what}: nothing reversed`).toEqual([]);
      } else {
        expect(terms.length, `${what}: at most one charge line`).toBeLessThanOrEqual(1);
        expect(reversals.length, `${what}: a written line is reversed`).toBe(terms.length);
      }
      expect(sum, `${what}: Σ lines`).toBe(order.state === "completed" ? line.priceMinor : 0);
    }
  }
  for (const c of charges.results) expect(caused.has(c.key), `charge ${c.key} has an order line`).toBe(true);
  await expectUsageBalance(t);
  await expectStatementsBalance(t);
}

/**
 * Each customer's statement of each month with lines shows, per currency, the exact sum of the
 * lines D1 has on it, and counts them all (README, "Charges and statements").
 */
export async function expectStatementsBalance(t: Tenant): Promise<void> {
  const months = await env.DB.prepare(
    `SELECT customer_id, month, currency, sum(amount_minor) AS total, count(*) AS lines FROM charges
      WHERE partner_id = ? GROUP BY customer_id, month, currency`,
  )
    .bind(t.partnerId)
    .all<{ customer_id: string; month: string; currency: string; total: number; lines: number }>();
  const byStatement = new Map<string, typeof months.results>();
  for (const m of months.results) {
    const statement = `${m.customer_id}/statements/${m.month}`;
    byStatement.set(statement, [...(byStatement.get(statement) ?? []), m]);
  }
  for (const [statement, rows] of byStatement) {
    const read = await expectOk(call("GET", `/v1/customers/${statement}?limit=1`, { token: t.operator }));
    expect(read.totals, `statement ${statement}: totals`).toEqual(
      Object.fromEntries(rows.map((m) => [m.currency, money(BigInt(m.total), m.currency)])),
    );
    expect(read.line_count, `statement ${statement}: its lines`).toBe(rows.reduce((n, m) => n + m.lines, 0));
  }
}

/**
 * The usage lines of `t` agree with its clouds' run histories: each cloud has exactly the lines of
 * its closed running time (README, "Charges and statements"), each once, so Σ a stopped or
 * cancelled cloud's usage lines is its metered charge; no usage line belongs to anything else.
 */
export async function expectUsageBalance(t: Tenant): Promise<void> {
  const usage = await env.DB.prepare(
    "SELECT key, subscription_id, amount_minor FROM charges WHERE partner_id = ? AND kind = 'usage' ORDER BY key",
  )
    .bind(t.partnerId)
    .all<{ key: string; subscription_id: string; amount_minor: number }>();
  const clouds = await env.DB.prepare("SELECT id FROM subscriptions WHERE partner_id = ? AND kind = 'caas'")
    .bind(t.partnerId)
    .all<{ id: string }>();
  const seen = new Set<string>();
  for (const { id } of clouds.results) {
    const r = await subscriptionObject(env, id).get();
    if (!r) continue;
    seen.add(id);
    // Nothing that ended is billed on (the month close would split its open run every month).
    if (r.endedAt !== null) expect(isRunning(r.runs), `ended cloud ${id} is not running`).toBe(false);
    const price = BigInt(r.unitPriceMinor);
    const expected = usageLines(r.id, r.runs, price);
    // The lines of the months its history settled (`settledRuns`) are summed, the others matched.
    const through = r.settledRuns?.through ?? Number.NEGATIVE_INFINITY;
    const lines = usage.results.filter((c) => c.subscription_id === id);
    const startOf = (c: { key: string }) => Number(c.key.split(":").at(-1));
    const written = lines.filter((c) => startOf(c) >= through);
    const settled = lines
      .filter((c) => startOf(c) < through)
      .reduce((n, c) => n + BigInt(c.amount_minor), 0n);
    expect(settled, `cloud ${id}: Σ its settled months' lines`).toBe(
      BigInt(r.settledRuns?.billedMinor ?? "0"),
    );
    expect(written.map((c) => c.key).sort(), `cloud ${id}: its usage lines`).toEqual(
      expected.map((l) => l.key).sort(),
    );
    const amounts = new Map(expected.map((l) => [l.key, l.amountMinor]));
    for (const c of written) expect(BigInt(c.amount_minor), `usage line ${c.key}`).toBe(amounts.get(c.key));
    const sum = written.reduce((n, c) => n + BigInt(c.amount_minor), 0n);
    expect(sum, `cloud ${id}: Σ usage lines`).toBe(expected.reduce((n, l) => n + l.amountMinor, 0n));
    if (!isRunning(r.runs)) {
      expect(sum, `cloud ${id}: Σ usage lines = its metered charge`).toBe(
        meteredCharge(r.id, r.runs, price, Number.MAX_SAFE_INTEGER),
      );
    }
  }
  for (const c of usage.results)
    expect(seen.has(c.subscription_id), `usage ${c.key} has its cloud`).toBe(true);
}

/**
 * A purchase of 2 of each of `resources` (one subscription of `mem` by default) for `t`'s first
 * customer whose request died at `step`: bought directly, with nothing to catch the fault.
 * Answers its ids and its plan.
 */
export async function purchaseDiedAt(t: Tenant, step: FaultStep, resources: readonly string[] = ["mem"]) {
  const now = new Date();
  const planned = await plan(
    env,
    t.partnerId,
    resources.map((resource) => ({
      customer: t.customers[0] as string,
      resource,
      amount: 2,
      period: "1 month",
    })),
    now,
  );
  const ids = assignIds(planned.subscriptions);
  armFault(step);
  await expect(buy(env, t.partnerId, planned.subscriptions, ids, now)).rejects.toThrow(step);
  return { ids, planned: planned.subscriptions };
}

/**
 * A purchase run as an operation (its run started, as the operations consumer starts it) for
 * tenant `t`'s first customer, whose run died at `step`: `objects` are its lines without the
 * customer. Answers its ids and its operation's reference.
 */
export async function purchaseOperationDiedAt(
  t: Tenant,
  step: FaultStep,
  objects: ReadonlyArray<Omit<PurchaseObject, "customer">>,
) {
  const customer = t.customers[0] as string;
  const now = new Date();
  const planned = (
    await plan(
      env,
      t.partnerId,
      objects.map((o) => ({ customer, ...o })),
      now,
    )
  ).subscriptions;
  const ids = assignIds(planned);
  const opRef = `op-${crypto.randomUUID()}`;
  await createOperation(env, {
    opRef,
    partnerId: t.partnerId,
    customerId: customer,
    kind: "purchase",
    payload: { kind: "purchase", partnerId: t.partnerId, ids },
    now,
  });
  await startOperation(env, opRef, now);
  armFault(step);
  await expect(buy(env, t.partnerId, planned, ids, now, { operationRef: opRef })).rejects.toThrow(step);
  disarmFaults();
  return { ids, opRef };
}
