import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { call, expectOk, failingD1, logLines, spyConsole, tenant } from "../helpers";

/**
 * A failure a request gets over (a rate limiter down, a commission's home not found now) is
 * logged with the request's id, so the line can be found from the request's: a client quotes
 * `X-Request-Id`, and its request line says only that the answer was a 200.
 */

spyConsole();

const lines = (event: string) => logLines("error", event);

describe("a failure within a request that still answers", () => {
  it("names the request: a rate limiter that fails", async () => {
    const t = await tenant({ customers: 0 });
    const limiterDown: Env = {
      ...env,
      RATE_LIMIT_STANDARD: { limit: () => Promise.reject(new Error("rate limiter unreachable")) },
    };
    const r = await call("GET", "/v1/customers", {
      token: t.partnerKey,
      env: limiterDown,
      headers: { "x-request-id": "limiter-down" },
    });
    expect(r.status).toBe(200);
    expect(lines("ratelimit.failed")).toEqual([
      expect.objectContaining({ requestId: "limiter-down", error: "rate limiter unreachable" }),
    ]);
  });

  it("names the request: a serial's home that cannot be looked up", async () => {
    const t = await tenant({ customers: 1, limit: 10 });
    const issued = await expectOk(
      call("POST", "/account/v1.0/commissions", {
        token: t.serviceToken,
        body: {
          provisions: [{ holder: t.customers[0], source: "system", resource: t.resources[0], quantity: 1 }],
        },
      }),
      201,
    );
    const r = await call("POST", "/account/v1.0/commissions/action", {
      token: t.serviceToken,
      env: { ...env, DB: failingD1(env.DB, "prepare", "batch") },
      body: { accept: [issued.serial] },
      headers: { "x-request-id": "home-lookup-down" },
    });
    expect(r.status).toBe(200);
    expect(lines("commission.home_lookup_failed")).toEqual([
      expect.objectContaining({ requestId: "home-lookup-down", error: "D1 is down" }),
    ]);
  });
});
