import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { RenewalMessage } from "../../src/app/renewals";
import { uuidv7 } from "../../src/domain/ids";
import worker from "../../src/index";
import type { OperationMessage } from "../../src/objects/operations-queue";
import type { WebhookMessage } from "../../src/objects/webhook-events";
import {
  call,
  eventually,
  expectOk,
  syndicatedProduct,
  tenantWithCatalog,
  vendorEndpoints,
} from "../helpers";
import { limitedD1 } from "../limited-d1";

vendorEndpoints();

/**
 * A queue consumer's batch is one invocation: its D1 queries (not those its objects make, which
 * have their own) are within the 1,000 one invocation may make, for a full batch of the heaviest
 * messages (wrangler.toml's max_batch_size: renewals 100, operations 10, webhooks 20).
 */

const BUDGET = 1000;
const sink = { send: async () => {}, sendBatch: async () => {} } as unknown as Queue;

async function consume<T>(queue: string, bodies: T[], consumerEnv: Env) {
  const batch = createMessageBatch<T>(
    queue,
    bodies.map((body, i) => ({ id: `${queue}-${i}`, timestamp: new Date(), attempts: 1, body })),
  );
  await worker.queue(batch as MessageBatch<unknown>, consumerEnv);
  return getQueueResult(batch, createExecutionContext());
}

describe("a full batch of each queue within one invocation's D1 queries", () => {
  it("renewals: 100 renewals", async () => {
    const t = await tenantWithCatalog(1, 100_000);
    const customer = t.customers[0] as string;
    const bought = await expectOk(
      call("POST", "/v1/subscriptions/", {
        token: t.partnerKey,
        body: {
          objects: Array.from({ length: 100 }, () => ({
            customer,
            resource: "cpu",
            amount: 1,
            period: "1 month",
            auto_renew: true,
          })),
        },
      }),
      201,
    );
    const subs = bought.objects as Array<{ id: string; end_time: string }>;
    const at = new Date(Date.parse(subs[0]?.end_time as string) - 60_000).toISOString();
    const d1 = limitedD1(env.DB, BUDGET);
    const result = await consume<RenewalMessage>(
      "stratus-renewals",
      subs.map((s) => ({ subscription: s.id, at })),
      { ...env, DB: d1.db, RENEWALS: sink },
    );
    expect(d1.refused).toBe(0);
    expect(result.explicitAcks).toHaveLength(100);
    // Renewed, each: the batch did its work, not only within the budget.
    for (const s of [subs[0], subs[99]]) {
      const read = await expectOk(call("GET", `/v1/subscriptions/${s?.id}/`, { token: t.partnerKey }));
      expect(read.descendants).toHaveLength(1);
    }
  }, 120_000);

  it("operations: 10 purchases of 500 subscriptions each", async () => {
    const t = await tenantWithCatalog(1, 1_000_000);
    const customer = t.customers[0] as string;
    const r = await call("POST", "/v1/subscriptions/", {
      token: t.partnerKey,
      headers: { prefer: "respond-async" },
      body: {
        objects: Array.from({ length: 500 }, () => ({
          customer,
          resource: "cpu",
          amount: 1,
          period: "1 month",
        })),
      },
    });
    expect(r.status, r.text).toBe(202);
    const opRef = (r.headers.get("location") as string).split("/").at(-1) as string;
    const payload = await eventually(async () => {
      const row = await env.DB.prepare("SELECT payload, status FROM operations WHERE op_ref = ?")
        .bind(opRef)
        .first<{ payload: string; status: string }>();
      return row?.status === "succeeded" ? JSON.parse(row.payload) : undefined;
    }, "the purchase done");
    const refs: string[] = [];
    for (let i = 0; i < 10; i++) {
      const ref = `op_${uuidv7().replaceAll("-", "")}`;
      const ids = {
        orders: { [customer]: uuidv7() },
        subscriptions: (payload.ids.subscriptions as string[]).map(
          (id) => uuidv7().slice(0, -4) + id.slice(-4),
        ),
      };
      const now = new Date().toISOString();
      await env.DB.prepare(
        `INSERT INTO operations (op_ref, partner_id, customer_id, kind, payload, status, attempts, created_at, updated_at, expires_at)
         VALUES (?, ?, ?, 'purchase', ?, 'queued', 0, ?, ?, '2999-01-01T00:00:00.000Z')`,
      )
        .bind(ref, t.partnerId, customer, JSON.stringify({ ...payload, ids }), now, now)
        .run();
      refs.push(ref);
    }
    const d1 = limitedD1(env.DB, BUDGET);
    const result = await consume<OperationMessage>(
      "stratus-operations",
      refs.map((ref) => ({ opRef: ref })),
      { ...env, DB: d1.db, OPERATIONS: sink },
    );
    expect(d1.refused).toBe(0);
    expect(result.explicitAcks).toHaveLength(10);
    const done = await env.DB.prepare(
      `SELECT count(*) AS n FROM operations WHERE status = 'succeeded' AND op_ref IN (${refs.map(() => "?").join(",")})`,
    )
      .bind(...refs)
      .first<{ n: number }>();
    expect(done?.n).toBe(10);
  }, 300_000);

  it("webhooks: 20 deliveries", async () => {
    const t = await tenantWithCatalog(1, 100);
    const { product, vendorId } = await syndicatedProduct(t);
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) {
      const id = `budget-delivery-${i}`;
      await env.DB.prepare(
        `INSERT INTO webhook_deliveries (id, vendor_id, product, subscription_id, type, sequence, payload, status, attempts, created_at)
         VALUES (?, ?, ?, ?, 'CREATED', 1, '{}', 'pending', 0, ?)`,
      )
        .bind(id, vendorId, product, `sub-${i}`, new Date().toISOString())
        .run();
      ids.push(id);
    }
    const d1 = limitedD1(env.DB, BUDGET);
    const result = await consume<WebhookMessage>(
      "stratus-webhooks",
      ids.map((deliveryId) => ({ deliveryId, due: null })),
      { ...env, DB: d1.db, WEBHOOKS: sink },
    );
    expect(d1.refused).toBe(0);
    expect(result.explicitAcks).toHaveLength(20);
    const delivered = await env.DB.prepare(
      "SELECT count(*) AS n FROM webhook_deliveries WHERE id LIKE 'budget-delivery-%' AND status = 'delivered'",
    ).first<{ n: number }>();
    expect(delivered?.n).toBe(20);
  });
});
