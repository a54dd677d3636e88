import { createExecutionContext, createMessageBatch, createScheduledController } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { RenewalMessage } from "../../src/app/renewals";
import { parseToken } from "../../src/domain/credentials";
import worker from "../../src/index";
import type { OperationMessage } from "../../src/objects/operations-queue";
import { call, consoleWritten, failingD1, logLines, spyConsole, tenant } from "../helpers";

/** The structured log lines: one per request, per queue batch and per cron run, and each failure. */

spyConsole();

const requestLine = (requestId: string) =>
  logLines("log", "request").filter((l) => l.requestId === requestId);

describe("the request line", () => {
  it("says who asked what and how it went, by route template, never with a secret", async () => {
    const t = await tenant({ customers: 1 });
    const r = await call("GET", `/v1/customers/${t.customers[0]}/`, {
      token: t.partnerKey,
      headers: { "x-request-id": "obs-read" },
    });
    expect(r.status).toBe(200);
    const [line, ...more] = requestLine("obs-read");
    expect(more).toEqual([]);
    expect(line).toEqual({
      event: "request",
      requestId: "obs-read",
      family: "partner",
      method: "GET",
      route: "/v1/customers/{id}",
      status: 200,
      durationMs: expect.any(Number),
      role: "partner",
      credentialId: parseToken(t.partnerKey)!.id,
      partnerId: t.partnerId,
    });
    const secret = parseToken(t.partnerKey)!.secret;
    expect(consoleWritten("log")).not.toContain(secret);
  });

  it("names no route when none matched, and the family and caller of every API", async () => {
    await call("GET", "/v1/nowhere/at/all", { headers: { "x-request-id": "obs-404" } });
    expect(requestLine("obs-404")).toEqual([
      expect.objectContaining({ route: null, status: 404, role: null, credentialId: null }),
    ]);
    const t = await tenant({ customers: 1 });
    await call("GET", "/account/v1.0/quotas", {
      token: t.userTokens[0],
      headers: { "x-request-id": "obs-quota" },
    });
    expect(requestLine("obs-quota")).toEqual([
      expect.objectContaining({
        family: "quota",
        route: "/account/v1.0/quotas",
        status: 200,
        role: "customer",
        partnerId: t.partnerId,
      }),
    ]);
    await call("OPTIONS", "/v1/customers", { headers: { "x-request-id": "obs-options" } });
    expect(requestLine("obs-options")).toEqual([
      expect.objectContaining({ method: "OPTIONS", route: "/v1/customers", status: 204 }),
    ]);
  });

  it("logs an unhandled failure with the request id, and the 500 it answered", async () => {
    const t = await tenant({ customers: 0 });
    const down: Env = { ...env, DB: failingD1(env.DB, "prepare", "batch") };
    const request = new Request<unknown, IncomingRequestCfProperties>("http://stratus.test/v1/customers", {
      headers: { "x-api-key": t.partnerKey, "x-request-id": "obs-500" },
    });
    // The credential row is cached by the isolate: authentication passes, the listing fails.
    await call("GET", "/v1/customers", { token: t.partnerKey });
    const r = await worker.fetch(request, down, createExecutionContext());
    expect(r.status).toBe(500);
    expect(logLines("error", "request.unhandled")).toContainEqual(
      expect.objectContaining({
        requestId: "obs-500",
        route: "/v1/customers",
        error: "D1 is down",
        stack: expect.any(String),
      }),
    );
    expect(requestLine("obs-500")).toEqual([expect.objectContaining({ status: 500 })]);
  });
});

describe("the queue and cron lines", () => {
  it("writes one line per batch with its acks, retries and outcomes", async () => {
    const batch = createMessageBatch<OperationMessage>("stratus-operations", [
      { id: "obs-op-1", timestamp: new Date(), attempts: 1, body: { opRef: `op_${"0".repeat(32)}` } },
      { id: "obs-op-2", timestamp: new Date(), attempts: 1, body: { opRef: `op_${"1".repeat(32)}` } },
    ]);
    await worker.queue(batch, env);
    expect(logLines("log", "queue")).toContainEqual({
      event: "queue",
      queue: "stratus-operations",
      messages: 2,
      acked: 2,
      retried: 0,
      durationMs: expect.any(Number),
    });
    const renewals = createMessageBatch<RenewalMessage>("stratus-renewals", [
      {
        id: "obs-renewal",
        timestamp: new Date(),
        attempts: 1,
        body: { subscription: "00000000-0000-7000-8000-00000000dead", at: new Date().toISOString() },
      },
    ]);
    await worker.queue(renewals, env);
    expect(logLines("log", "queue")).toContainEqual(
      expect.objectContaining({ queue: "stratus-renewals", messages: 1, acked: 1, retried: 0, skipped: 1 }),
    );
  });

  it("writes one line per cron run", async () => {
    const scheduledTime = Date.now();
    await worker.scheduled(createScheduledController({ scheduledTime, cron: "*/5 * * * *" }), env);
    expect(logLines("log", "cron")).toEqual([
      expect.objectContaining({
        cron: "*/5 * * * *",
        scheduledTime: new Date(scheduledTime).toISOString(),
        durationMs: expect.any(Number),
        renewalsEnqueued: expect.any(Number),
        stalledOperations: expect.any(Object),
        usageMonth: expect.any(Object),
        failed: [],
      }),
    ]);
  });

  it("runs every step of a cron run though one fails, and says which failed", async () => {
    // D1 refuses the query of the purchases waiting on a vendor, and only it.
    const db = new Proxy(env.DB, {
      get(target, key) {
        if (key === "prepare")
          return (query: string) => {
            if (/"kind" = \? and "operations"\."created_at" < \?/.test(query)) throw new Error("D1 is down");
            return target.prepare(query);
          };
        const value = Reflect.get(target, key);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const scheduledTime = Date.now();
    const controller = createScheduledController({ scheduledTime, cron: "*/5 * * * *" });
    await expect(worker.scheduled(controller, { ...env, DB: db })).rejects.toThrow(
      "overduePurchasesAbandoned",
    );
    const [line] = logLines("log", "cron");
    expect(line).toMatchObject({
      failed: ["overduePurchasesAbandoned"],
      renewalsEnqueued: expect.any(Number),
      stalledOperations: expect.any(Object),
      usageMonth: expect.any(Object),
      webhooksResent: expect.any(Number),
    });
    expect(logLines("error", "cron.failed")).toEqual([
      expect.objectContaining({ step: "overduePurchasesAbandoned", error: "D1 is down" }),
    ]);
  });
});
