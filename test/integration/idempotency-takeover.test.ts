import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { expectBooksBalance } from "../books";
import { call, expectOk, gate, type Reply, tenantWithCatalog, unique } from "../helpers";

/**
 * A keyed request slow enough for its retry to take its key over (the lock of 60 s ran out) before
 * it recorded the work it commits to: the retry runs the work anew, so the slow first attempt,
 * when it comes back, must not run a second copy of it (README, "Idempotency": "It never runs a
 * second purchase").
 */

/** The statement that records a keyed request's intent with its key. */
const RECORDS_INTENT = /^update "idempotency_keys" set "intent"/i;

/**
 * `db` (or a session of it) whose statement recording an intent waits for `held` before it runs:
 * the request is slow there, as a D1 call that stalls is.
 */
function stallingIntent<T extends D1Database | D1DatabaseSession>(db: T, held: () => Promise<void>): T {
  const stalled = (statement: D1PreparedStatement): D1PreparedStatement =>
    new Proxy(statement, {
      get(target, key) {
        const value = Reflect.get(target, key);
        if (typeof value !== "function") return value;
        if (key === "bind") return (...args: unknown[]) => stalled(value.apply(target, args));
        return async (...args: unknown[]) => {
          await held();
          return value.apply(target, args);
        };
      },
    });
  return new Proxy(db, {
    get(target, key) {
      if (key === "prepare")
        return (sql: string) => {
          const statement = target.prepare(sql);
          return RECORDS_INTENT.test(sql) ? stalled(statement) : statement;
        };
      if (key === "withSession")
        return (start?: string) => stallingIntent((target as D1Database).withSession(start), held);
      const value = Reflect.get(target, key);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

describe("a keyed purchase whose retry took its key over before it recorded its work", () => {
  it("buys once: the slow first attempt, back after the takeover, buys nothing", async () => {
    const t = await tenantWithCatalog(1);
    const key = unique("key");
    const body = { objects: [{ customer: t.customers[0], resource: "cpu", amount: 2, period: "1 week" }] };
    const headers = { "idempotency-key": key };
    const slow = gate();
    const first = call("POST", "/v1/subscriptions/", {
      token: t.partnerKey,
      body,
      headers,
      env: { ...env, DB: stallingIntent(env.DB, slow.pass) },
    });
    await slow.reached;

    // 61 s later the first attempt's lock has run out: its retry takes the key over and buys.
    vi.useFakeTimers({ toFake: ["Date"], now: Date.now() + 61_000 });
    let retry: Reply;
    try {
      retry = await call("POST", "/v1/subscriptions/", { token: t.partnerKey, body, headers });
    } finally {
      vi.useRealTimers();
    }
    expect(retry.status).toBe(201);

    // The first attempt comes back: its key is no longer its own, so it must not buy again.
    slow.release();
    const late = await first;

    const subscriptions = await expectOk(
      call("GET", "/v1/subscriptions/?resource=cpu", { token: t.partnerKey }),
    );
    expect(subscriptions.objects.map((s: { id: string }) => s.id)).toEqual([retry.body.objects[0].id]);
    const charges = await expectOk(
      call("GET", `/v1/charges?customer=${t.customers[0]}`, { token: t.partnerKey }),
    );
    expect(charges.objects.map((c: { id: string }) => c.id)).toEqual([
      `purchase:${retry.body.objects[0].id}`,
    ]);
    // Answered 409 (the work is its retry's), having bought nothing.
    expect(late.status).toBe(409);
    await expectBooksBalance(t);
  });
});
