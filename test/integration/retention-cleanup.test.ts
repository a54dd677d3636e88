import { createScheduledController } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { createOperation, findOperation, finishOperation } from "../../src/db/operations";
import { EVERYTHING } from "../../src/domain/scope";
import worker from "../../src/index";
import { call, expectOk, tenant, unique } from "../helpers";

/**
 * What is kept only for a while is forgotten by the cron, not kept for ever: an Idempotency-Key
 * past its 24 hours (each kept its answer's body), and a webhook delivery that is over (delivered
 * or dead) past its retention horizon, with the attempts made before it. D1 holds 10 GB: without
 * this, every keyed write and every event grew it for good.
 */

const DAY = 86_400_000;
const cron = (at: number) =>
  worker.scheduled(createScheduledController({ scheduledTime: at, cron: "*/5 * * * *" }), env);
const countOf = async (query: string, ...values: unknown[]) =>
  (
    await env.DB.prepare(query)
      .bind(...values)
      .first<{ n: number }>()
  )?.n ?? 0;

describe("the cron's retention of keys and deliveries", () => {
  it("forgets an Idempotency-Key past its 24 hours, and keeps one within them", async () => {
    const t = await tenant({ customers: 0 });
    const key = unique("key");
    const create = (name: string) =>
      call("POST", "/v1/customers", {
        token: t.partnerKey,
        body: { name },
        headers: { "idempotency-key": key },
      });
    const first = await expectOk(create("First"), 201);
    const keys = () => countOf("SELECT count(*) AS n FROM idempotency_keys WHERE key = ?", key);
    expect(await keys()).toBe(1);

    await cron(Date.now() + DAY - 60_000);
    expect(await keys()).toBe(1);
    const replayed = await create("First");
    expect(replayed.body.id).toBe(first.id);

    await cron(Date.now() + DAY + 60_000);
    expect(await keys()).toBe(0);
  });

  it("forgets deliveries that are over past their horizon, and attempts older than it; keeps the rest", async () => {
    const now = Date.now();
    const old = new Date(now - 31 * DAY).toISOString();
    const recent = new Date(now - DAY).toISOString();
    const tag = unique("d");
    const delivery = (name: string, status: string, created: string, restarted: string | null) =>
      env.DB.prepare(
        `INSERT INTO webhook_deliveries (id, vendor_id, product, subscription_id, type, sequence, payload, status,
           attempts, schedule_started_at, created_at)
         VALUES (?, 'vendor', 'product', ?, 'CREATED', 1, '{}', ?, 1, ?, ?)`,
      )
        .bind(`${tag}-${name}`, `${tag}-${name}-sub`, status, restarted, created)
        .run();
    const attempt = (name: string, n: number, at: string) =>
      env.DB.prepare(
        "INSERT INTO webhook_attempts (delivery_id, attempt, at, status, error, duration_ms) VALUES (?, ?, ?, 200, NULL, 5)",
      )
        .bind(`${tag}-${name}`, n, at)
        .run();
    await delivery("delivered-old", "delivered", old, null);
    await attempt("delivered-old", 1, old);
    await delivery("dead-old", "dead", old, null);
    await attempt("dead-old", 1, old);
    // Still pending, however old: the consumer (or the cron's resend) settles it first.
    await delivery("pending-old", "pending", old, null);
    await delivery("delivered-recent", "delivered", recent, null);
    await attempt("delivered-recent", 1, recent);
    // Redelivered within its horizon: kept, with its later attempt; its first attempt is past it.
    await delivery("redelivered", "delivered", old, recent);
    await attempt("redelivered", 1, old);
    await attempt("redelivered", 2, recent);

    await cron(now);

    const left = await env.DB.prepare("SELECT id FROM webhook_deliveries WHERE id LIKE ? ORDER BY id")
      .bind(`${tag}-%`)
      .all<{ id: string }>();
    expect(left.results.map((r) => r.id.slice(tag.length + 1))).toEqual([
      "delivered-recent",
      "pending-old",
      "redelivered",
    ]);
    const attempts = await env.DB.prepare(
      "SELECT delivery_id, attempt FROM webhook_attempts WHERE delivery_id LIKE ? ORDER BY delivery_id, attempt",
    )
      .bind(`${tag}-%`)
      .all<{ delivery_id: string; attempt: number }>();
    expect(attempts.results.map((a) => `${a.delivery_id.slice(tag.length + 1)}#${a.attempt}`)).toEqual([
      "delivered-recent#1",
      "redelivered#2",
    ]);
  });

  it("keeps an operation 30 days from when it finished: one that took longer is not forgotten as it finishes", async () => {
    const t = await tenant({ customers: 0 });
    const opRef = unique("op");
    await createOperation(env, {
      opRef,
      partnerId: t.partnerId,
      customerId: null,
      kind: "purchase",
      payload: {},
      now: new Date(Date.now() - 31 * DAY),
    });
    await finishOperation(env, opRef, { status: "succeeded", resultBody: "{}" }, new Date());
    await cron(Date.now() + 60_000);
    expect((await findOperation(env, opRef, EVERYTHING))?.status).toBe("succeeded");
    await cron(Date.now() + 30 * DAY + 60_000);
    expect(await findOperation(env, opRef, EVERYTHING)).toBeUndefined();
  });
});
