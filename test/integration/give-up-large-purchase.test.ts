import { createScheduledController } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { OperationPayload } from "../../src/app/intents";
import { MAX_ATTEMPTS, requeueStalledOperations, runOperation } from "../../src/app/operations";
import { assignIds } from "../../src/app/subscriptions";
import { createOperation } from "../../src/db/operations";
import { armFault, disarmFaults } from "../../src/domain/faults";
import { subscriptionId, uuidv7 } from "../../src/domain/ids";
import { MAX_OBJECTS } from "../../src/domain/purchase";
import { recoveryBoundMs } from "../../src/domain/recovery";
import worker from "../../src/index";
import { call, expectOk, type Tenant, tenantWithCatalog } from "../helpers";
import { limitedD1 } from "../limited-d1";

afterEach(() => disarmFaults());

/**
 * A purchase may buy MAX_OBJECTS objects for as many customers, one order each. Given up after its
 * attempts (here: each died once its commission held the quota, before any subscription was
 * made), its undo must fit one invocation's 1,000 D1 queries: it looked each customer up with a
 * query of its own and wrote the failed orders a statement each, over 1,000 for 500 customers, so
 * it failed at the same place on every run. The operation stayed running for good, its orders
 * never written, its commission's follow-up owed, and every step of the cron after it failed.
 */

/** A purchase operation of one cpu for each of MAX_OBJECTS customers, out of attempts, its commission issued. */
async function largePurchaseGivenUp(t: Tenant): Promise<{ opRef: string; customers: string[] }> {
  const customers = Array.from({ length: MAX_OBJECTS }, () => uuidv7());
  for (let i = 0; i < customers.length; i += 50) {
    await env.DB.batch(
      customers
        .slice(i, i + 50)
        .map((c) =>
          env.DB.prepare("INSERT INTO customers (id, partner_id, name) VALUES (?, ?, 'bulk')").bind(
            c,
            t.partnerId,
          ),
        ),
    );
  }
  for (let i = 0; i < customers.length; i += 25) {
    await Promise.all(
      customers.slice(i, i + 25).map((c) =>
        expectOk(
          call("PUT", `/v1/customers/${c}/quotas`, {
            token: t.operator,
            body: { resource: "stratus.cpu", limit: 10 },
          }),
        ),
      ),
    );
  }
  const objects = customers.map((customer) => ({ customer, resource: "cpu", amount: 1, period: "1 week" }));
  const ids = assignIds(objects.map((o) => ({ customer: o.customer })) as never);
  const payload: OperationPayload = {
    kind: "purchase",
    partnerId: t.partnerId,
    at: new Date().toISOString(),
    objects,
    ids,
  };
  const opRef = `op_${uuidv7().replaceAll("-", "")}`;
  await createOperation(env, {
    opRef,
    partnerId: t.partnerId,
    customerId: null,
    kind: "purchase",
    payload: payload as unknown as Record<string, unknown>,
    now: new Date(),
  });
  // Its last attempt issues the commission (the quota held) and dies.
  armFault("purchase.issued");
  await expect(runOperation(env, opRef)).rejects.toThrow();
  await env.DB.prepare("UPDATE operations SET attempts = ? WHERE op_ref = ?").bind(MAX_ATTEMPTS, opRef).run();
  return { opRef, customers };
}

/** That the purchase was undone: the operation fails (409), its orders failed, its quota released. */
async function expectUndone(t: Tenant, opRef: string, customers: string[]) {
  const op = await call("GET", `/v1/operations/${opRef}`, { token: t.partnerKey });
  expect(op.status, op.text).toBe(409);
  const orders = await env.DB.prepare(
    "SELECT state, count(*) AS n FROM orders WHERE partner_id = ? AND customer_id != ? GROUP BY state",
  )
    .bind(t.partnerId, t.customers[0])
    .all<{ state: string; n: number }>();
  expect(orders.results).toEqual([{ state: "failed", n: MAX_OBJECTS }]);
  for (const c of [customers[0], customers.at(-1)]) {
    const holdings = await expectOk(call("GET", `/v1/customers/${c}/quotas`, { token: t.operator }));
    expect(holdings.objects.find((h: { resource: string }) => h.resource === "stratus.cpu")).toMatchObject({
      usage: 0,
      pending: 0,
    });
  }
}

describe("a purchase of as many customers as one may buy, given up", () => {
  it("is undone within one invocation's D1 queries", async () => {
    const t = await tenantWithCatalog(1, 100);
    const { opRef, customers } = await largePurchaseGivenUp(t);
    const held = await expectOk(call("GET", `/v1/customers/${customers[0]}/quotas`, { token: t.operator }));
    expect(held.objects.find((h: { resource: string }) => h.resource === "stratus.cpu")).toMatchObject({
      usage: 1,
    });

    // The cron's sweeps, each one invocation with all of D1's 1,000 queries to itself.
    const d1 = limitedD1(env.DB, 1000);
    const bound = recoveryBoundMs(env);
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    try {
      for (let run = 1; run <= 2; run++) {
        d1.invocation();
        await requeueStalledOperations({ ...env, DB: d1.db }, new Date(Date.now() + run * (bound + 1_000)));
      }
    } finally {
      errors.mockRestore();
    }
    await expectUndone(t, opRef, customers);
    expect(d1.refused).toBe(0);
  }, 120_000);

  it("is undone by the cron behind other give-ups, and the steps after it still run", async () => {
    const t = await tenantWithCatalog(1, 100);
    const customer = t.customers[0] as string;
    const { opRef, customers } = await largePurchaseGivenUp(t);
    // Give-ups stalled longer, most of the give-ups' share: purchases of one subscription whose
    // request died before it bought anything.
    const stalledAt = new Date(Date.now() - 86_400_000).toISOString();
    const insert = env.DB.prepare(
      `INSERT INTO operations (op_ref, partner_id, customer_id, kind, payload, status, attempts, created_at, updated_at, expires_at)
       VALUES (?, ?, ?, 'purchase', ?, 'running', ?, ?, ?, '2999-01-01T00:00:00.000Z')`,
    );
    await env.DB.batch(
      Array.from({ length: 40 }, (_, i) =>
        insert.bind(
          `op_0small${String(i).padStart(23, "0")}`,
          t.partnerId,
          customer,
          JSON.stringify({
            kind: "purchase",
            partnerId: t.partnerId,
            at: stalledAt,
            objects: [{ customer, resource: "cpu", amount: 1, period: "1 week" }],
            ids: { orders: { [customer]: uuidv7() }, subscriptions: [subscriptionId(customer)] },
          }),
          MAX_ATTEMPTS,
          stalledAt,
          stalledAt,
        ),
      ),
    );

    const d1 = limitedD1(env.DB, 1000);
    const lines: Array<Record<string, unknown>> = [];
    const log = vi.spyOn(console, "log").mockImplementation((line: unknown) => {
      if (typeof line === "string" && line.startsWith('{"event":"cron"')) lines.push(JSON.parse(line));
    });
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    const now = Date.now() + recoveryBoundMs(env) + 1_000;
    try {
      await worker.scheduled(createScheduledController({ scheduledTime: now, cron: "*/5 * * * *" }), {
        ...env,
        DB: d1.db,
      });
    } catch {
      // A failed step is in the line.
    } finally {
      log.mockRestore();
      errors.mockRestore();
    }
    expect(lines.at(-1)?.failed).toEqual([]);
    expect(lines.at(-1)?.stalledOperations).toMatchObject({ givenUp: 41 });
    expect(d1.refused).toBe(0);
    await expectUndone(t, opRef, customers);
  }, 120_000);
});
