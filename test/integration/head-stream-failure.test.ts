import { createExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import worker from "../../src/index";
import { call, logLines, spyConsole, tenant } from "../helpers";

/**
 * A HEAD of a `limit=0` list reads the whole streamed body to say its length: a page that fails
 * after the first is a failure of the request itself, which answers 500 (logged, with its request
 * line) instead of throwing out of the Worker's fetch handler.
 */

spyConsole();

/** `db` whose statements reading customers fail once `reads` of them have been prepared. */
function failingAfter<T extends D1Database | D1DatabaseSession>(db: T, counter: { reads: number }): T {
  return new Proxy(db, {
    get(target, key) {
      if (key === "prepare")
        return (query: string) => {
          if (/from "customers"/.test(query) && --counter.reads < 0) throw new Error("D1 is down");
          return target.prepare(query);
        };
      if (key === "withSession")
        return (start?: string) => failingAfter((target as D1Database).withSession(start), counter);
      const value = Reflect.get(target, key);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/** A partner of 501 customers (one more than a streamed page holds), its credential kept by the isolate. */
async function partnerOf501() {
  const t = await tenant({ customers: 0 });
  const ids = Array.from(
    { length: 501 },
    (_, i) => `${t.partnerId.slice(0, 24)}${String(i).padStart(12, "0")}`,
  );
  await env.DB.batch(
    ids.map((id, i) =>
      env.DB.prepare("INSERT INTO customers (id, partner_id, name) VALUES (?, ?, ?)").bind(
        id,
        t.partnerId,
        `c${i}`,
      ),
    ),
  );
  // The credential row is kept by the isolate: only the list's reads meet the failing D1.
  await call("GET", "/v1/customers", { token: t.partnerKey });
  return t;
}

/** Every customer, with a D1 that reads the first page (its rows and its count) and fails on the second. */
function listEvery(method: string, key: string, requestId: string) {
  const down = { ...env, DB: failingAfter(env.DB, { reads: 2 }) };
  const request = new Request<unknown, IncomingRequestCfProperties>(
    "http://stratus.test/v1/customers?limit=0",
    {
      method,
      headers: { "x-api-key": key, "x-request-id": requestId },
    },
  );
  return worker.fetch(request, down, createExecutionContext());
}

describe("HEAD of a limit=0 list whose later page fails", () => {
  it("answers a logged 500 with its request line", async () => {
    const t = await partnerOf501();
    const answered = await listEvery("HEAD", t.partnerKey, "head-stream").then(
      (r) => r.status,
      (error: unknown) => `threw: ${String(error)}`,
    );
    expect(answered).toBe(500);
    // Logged once, as the request's failure: the list cut short, and why.
    expect(logLines("error", "request.unhandled")).toEqual([
      expect.objectContaining({
        requestId: "head-stream",
        method: "HEAD",
        route: "/v1/customers",
        status: 500,
        error: "the list was cut short after 500 items",
        cause: "D1 is down",
      }),
    ]);
    expect(logLines("error", "list.page_failed")).toEqual([]);
    expect(logLines("log", "request").filter((l) => l.requestId === "head-stream")).toEqual([
      expect.objectContaining({ status: 500 }),
    ]);
  });
});

describe("GET of a limit=0 list whose later page fails", () => {
  it("is cut short, and its failure is logged once with the request's id and route", async () => {
    const t = await partnerOf501();
    const response = await listEvery("GET", t.partnerKey, "get-stream");
    expect(response.status).toBe(200);
    await expect(response.text()).rejects.toThrow();
    expect(logLines("error", "list.page_failed")).toEqual([
      expect.objectContaining({
        requestId: "get-stream",
        route: "/v1/customers",
        items: 500,
        error: "D1 is down",
        stack: expect.stringContaining("D1 is down"),
      }),
    ]);
    expect(logLines("error", "request.unhandled")).toEqual([]);
  });
});
