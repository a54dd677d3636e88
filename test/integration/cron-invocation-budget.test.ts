import { createScheduledController } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { PAGE, PAGES_PER_INVOCATION } from "../../src/app/fan-out";
import { MAX_ATTEMPTS, OVERDUE_PER_RUN, STALLED_PER_RUN, VENDOR_DEADLINE_MS } from "../../src/app/operations";
import { DELETES_PER_RUN, ROWS_PER_DELETE } from "../../src/db/client";
import { subscriptionId, uuidv7 } from "../../src/domain/ids";
import { recoveryBoundMs } from "../../src/domain/recovery";
import worker from "../../src/index";
import { call, eventually, syndicatedProduct, tenantWithCatalog, vendorEndpoints } from "../helpers";
import { limitedD1 } from "../limited-d1";

vendorEndpoints();

/**
 * Each of the cron's steps is bounded on its own, but they all run in one scheduled invocation,
 * which may make 1,000 D1 queries (Workers Paid) and 10,000 subrequests (README). With every step's
 * backlog at its per-run bound at once, the steps' sum must stay within them: a run that runs out
 * part-way fails every step after (deletes, the month close, webhook resends), run after run while
 * the backlogs last.
 */

const DAY = 86_400_000;
const PAST = "2000-01-01T00:00:00.000Z";
const BUDGET = 1000;
const SUBREQUESTS = 10_000;

const fill = (table: string, count: number, select: string) =>
  env.DB.prepare(
    `INSERT INTO ${table} WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${count}) ${select}`,
  ).run();

/** An object namespace whose stubs count each call (a subrequest of the invocation). */
function countedObjects<N extends object>(namespace: N, count: () => void): N {
  return {
    idFromName: (name: string) => (namespace as DurableObjectNamespace).idFromName(name),
    get: (id: DurableObjectId) => {
      const stub = (namespace as DurableObjectNamespace).get(id) as unknown as Record<
        string,
        (...args: unknown[]) => unknown
      >;
      return new Proxy(
        {},
        {
          get: (_, m) =>
            m === "then"
              ? undefined
              : (...args: unknown[]) => {
                  count();
                  return stub[m as string]?.(...args);
                },
        },
      );
    },
  } as unknown as N;
}

/** A queue that drops what is sent to it, counting each call (a subrequest). */
const countedQueue = (count: () => void) =>
  ({
    send: async () => count(),
    sendBatch: async () => count(),
  }) as unknown as Queue;

describe("the cron's whole run with every step's backlog at its bound", () => {
  it("runs every step within one invocation's D1 queries and subrequests", async () => {
    const now = Date.now() + recoveryBoundMs(env) + 60_000;
    const t = await tenantWithCatalog(1, 1000);
    const customer = t.customers[0] as string;
    const { product } = await syndicatedProduct(t, undefined, { limit: 1000 });

    // OVERDUE_PER_RUN syndicated purchases waiting on their vendor past the deadline.
    const waiting: string[] = [];
    for (let i = 0; i < OVERDUE_PER_RUN; i += 10) {
      const replies = await Promise.all(
        Array.from({ length: 10 }, () =>
          call("POST", "/v1/subscriptions/", {
            token: t.partnerKey,
            body: { objects: [{ customer, resource: product, amount: 1, period: "1 week" }] },
          }),
        ),
      );
      for (const r of replies) {
        expect(r.status, r.text).toBe(202);
        waiting.push((r.headers.get("location") as string).split("/").at(-1) as string);
      }
    }
    await eventually(async () => {
      const row = await env.DB.prepare(
        `SELECT count(*) AS n FROM operations WHERE partner_id = ? AND waiting = 1`,
      )
        .bind(t.partnerId)
        .first<{ n: number }>();
      return row?.n === OVERDUE_PER_RUN ? true : undefined;
    }, "every purchase waiting on its vendor");
    const accepted = new Date(now - VENDOR_DEADLINE_MS - DAY).toISOString();
    await env.DB.prepare("UPDATE operations SET created_at = ? WHERE partner_id = ? AND waiting = 1")
      .bind(accepted, t.partnerId)
      .run();
    const template = await env.DB.prepare("SELECT payload FROM operations WHERE op_ref = ?")
      .bind(waiting[0])
      .first<{ payload: string }>();
    const purchase = JSON.parse(template?.payload as string);

    // STALLED_PER_RUN stalled operations, every one out of its attempts: purchases whose request
    // died before it bought anything, each given up (its undo run) by the sweep.
    const stalledAt = new Date(now - DAY).toISOString();
    const insert = env.DB.prepare(
      `INSERT INTO operations (op_ref, partner_id, customer_id, kind, payload, status, attempts, created_at, updated_at, expires_at)
       VALUES (?, ?, ?, 'purchase', ?, 'running', ?, ?, ?, '2999-01-01T00:00:00.000Z')`,
    );
    const stalled = Array.from({ length: STALLED_PER_RUN }, (_, i) => {
      const payload = {
        ...purchase,
        ids: { orders: { [customer]: uuidv7() }, subscriptions: [subscriptionId(customer)] },
      };
      return insert.bind(
        `op_0stalled${String(i).padStart(21, "0")}`,
        t.partnerId,
        customer,
        JSON.stringify(payload),
        MAX_ATTEMPTS,
        stalledAt,
        stalledAt,
      );
    });
    for (let i = 0; i < stalled.length; i += 100) await env.DB.batch(stalled.slice(i, i + 100));

    // Due renewals past one invocation's pages, and as many clouds running into the month to close.
    const ROWS = PAGE * PAGES_PER_INVOCATION + 100;
    const subscriptions = (prefix: string, endTime: string | null, runningSince: number | null) =>
      env.DB.prepare(
        `INSERT INTO subscriptions (id, partner_id, customer_id, product, kind, amount, start_time, end_time,
           auto_renew, ended_at, root_id, previous_id, next_id, order_id, body, version, running_since)
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${ROWS})
         SELECT '${prefix}-' || printf('%06d', i), 'p-budget', 'c-budget', 'cpu', ?3,
           1, '1999-01-01T12:00:00.000Z', ?1, 1, NULL, '${prefix}-' || printf('%06d', i), NULL, NULL, 'o-' || i, '{}', 1, ?2
         FROM n`,
      )
        .bind(endTime, runningSince, runningSince === null ? "subscription" : "caas")
        .run();
    await subscriptions("budget-due", PAST, null);
    await subscriptions("budget-cloud", null, Date.parse("2000-01-15T00:00:00.000Z"));
    // The month before the run's is not closed yet (the migration records the one before its own).
    await env.DB.prepare("DELETE FROM usage_closes").run();

    // Expired rows past what one run deletes, in each table the cron cleans.
    const EXPIRED = ROWS_PER_DELETE * DELETES_PER_RUN + 100;
    await fill(
      "operations (op_ref, partner_id, kind, payload, status, attempts, created_at, updated_at, expires_at)",
      EXPIRED,
      `SELECT 'op_0expired' || printf('%021d', i), 'p-budget', 'cancel', '{}', 'succeeded', 1, '${PAST}', '${PAST}', '${PAST}' FROM n`,
    );
    await fill(
      "consumption_queues (report, subscriptions, expires_at)",
      EXPIRED,
      `SELECT 'budget-report-' || i, '[]', '${PAST}' FROM n`,
    );
    await fill(
      "idempotency_keys (owner, key, fingerprint, locked_until, expires_at)",
      EXPIRED,
      `SELECT 'partner:budget', 'key-' || i, 'f', '${PAST}', '${PAST}' FROM n`,
    );
    await fill(
      `webhook_deliveries (id, vendor_id, product, subscription_id, type, sequence, payload, status, attempts, created_at)`,
      EXPIRED,
      `SELECT 'budget-dead-' || i, 'v-budget', 'p-budget', 's-' || i, 'CREATED', 1, '{}', 'dead', 1, '${PAST}' FROM n`,
    );
    await fill(
      "webhook_attempts (delivery_id, attempt, at, status, error, duration_ms)",
      EXPIRED,
      `SELECT 'budget-dead-' || i, 1, '${PAST}', 500, NULL, 5 FROM n`,
    );
    // Pending deliveries whose message was lost, past what one run resends.
    await fill(
      `webhook_deliveries (id, vendor_id, product, subscription_id, type, sequence, payload, status, attempts, next_attempt_at, created_at)`,
      600,
      `SELECT 'budget-lost-' || i, 'v-budget', 'p-budget', 'lost-' || i, 'CREATED', 1, '{}', 'pending', 1, '${new Date(now - DAY).toISOString()}', '${new Date(now - DAY).toISOString()}' FROM n`,
    );

    // One scheduled invocation, with D1's budget and every subrequest counted.
    const d1 = limitedD1(env.DB, BUDGET);
    let subrequests = 0;
    const count = () => {
      subrequests++;
    };
    const cronEnv = {
      ...env,
      DB: d1.db,
      RENEWALS: countedQueue(count),
      OPERATIONS: countedQueue(count),
      WEBHOOKS: countedQueue(count),
      SUBSCRIPTION: countedObjects(env.SUBSCRIPTION, count),
      QUOTA_LEDGER: countedObjects(env.QUOTA_LEDGER, count),
    } as unknown as Env;
    const lines: Array<Record<string, unknown>> = [];
    const spy = vi.spyOn(console, "log").mockImplementation((line: unknown) => {
      if (typeof line === "string" && line.startsWith('{"event":"cron"')) lines.push(JSON.parse(line));
    });
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    let thrown: unknown = null;
    try {
      await worker.scheduled(createScheduledController({ scheduledTime: now, cron: "*/5 * * * *" }), cronEnv);
    } catch (error) {
      thrown = error;
    } finally {
      spy.mockRestore();
      errors.mockRestore();
    }
    const line = lines.at(-1) ?? {};
    console.info("cron run:", JSON.stringify({ ...line, d1: d1.used, refused: d1.refused, subrequests }));
    expect(thrown).toBeNull();
    expect(line.failed).toEqual([]);
    expect(d1.refused).toBe(0);
    expect(d1.used).toBeLessThanOrEqual(BUDGET);
    expect(d1.used + subrequests).toBeLessThanOrEqual(SUBREQUESTS);
    // Every step made progress.
    expect(line.renewalsEnqueued).toBeGreaterThan(0);
    expect(line.overduePurchasesAbandoned).toBeGreaterThan(0);
    expect((line.stalledOperations as { givenUp: number }).givenUp).toBeGreaterThan(0);
    expect(line.expiredOperationsDeleted).toBeGreaterThan(0);
    expect(line.expiredConsumptionQueuesDeleted).toBeGreaterThan(0);
    expect(line.expiredKeysDeleted).toBeGreaterThan(0);
    expect(line.expiredDeliveriesDeleted).toBeGreaterThan(0);
    expect((line.usageMonth as { enqueued: number }).enqueued).toBeGreaterThan(0);
    expect(line.webhooksResent).toBeGreaterThan(0);
    // The purchases' events are delivered before the file ends (and its vendor endpoints with it).
    await eventually(async () => {
      const row = await env.DB.prepare(
        "SELECT count(*) AS n FROM webhook_deliveries WHERE product = ? AND status = 'pending'",
      )
        .bind(product)
        .first<{ n: number }>();
      return row?.n === 0 ? true : undefined;
    }, "the purchases' events delivered");
  }, 300_000);
});
