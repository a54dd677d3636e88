import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { parseToken } from "../../src/domain/credentials";
import { RATE_LIMIT_POLICIES, tierOf } from "../../src/http/rate-limit";
import { call, expectOk, type Reply, type Tenant, tenant, unique } from "../helpers";

/**
 * Rate limits, against the real (local) Rate Limiting bindings with wrangler.toml's limits: 600
 * requests per credential and 60 s under `standard`, 20 failed authentications per address and
 * 60 s. The local limiter counts exactly, in windows aligned to the clock, so each test first waits
 * for a window with room enough for what it sends, and then the counts are exact.
 */

const WINDOW_MS = 60_000;
const STANDARD = RATE_LIMIT_POLICIES.standard.quota;
const FAILURES = RATE_LIMIT_POLICIES.authFailures.quota;

/** Waits for the next window if fewer than `seconds` are left in this one. */
async function windowWithRoom(seconds: number): Promise<void> {
  const left = WINDOW_MS - (Date.now() % WINDOW_MS);
  if (left < seconds * 1000) await new Promise((resolve) => setTimeout(resolve, left + 200));
}

/** `count` calls, `width` at a time; their statuses in order, and the first 429 (if any). */
async function burst(count: number, send: () => Promise<Reply>, width = 25) {
  const statuses: number[] = [];
  let limited: Reply | undefined;
  for (let done = 0; done < count; done += width) {
    const replies = await Promise.all(Array.from({ length: Math.min(width, count - done) }, send));
    for (const r of replies) {
      statuses.push(r.status);
      if (r.status === 429) limited ??= r;
    }
  }
  const tally = (status: number) => statuses.filter((s) => s === status).length;
  return { statuses, tally, limited };
}

/** The RateLimit headers of a 429 (draft-ietf-httpapi-ratelimit-headers) and Retry-After, checked. */
function expectRateLimitHeaders(r: Reply, policy: string, quota: number): number {
  const retryAfter = Number(r.headers.get("retry-after"));
  expect(Number.isInteger(retryAfter)).toBe(true);
  expect(retryAfter).toBeGreaterThanOrEqual(1);
  expect(retryAfter).toBeLessThanOrEqual(60);
  expect(r.headers.get("ratelimit-policy")).toBe(`"${policy}";q=${quota};w=60`);
  expect(r.headers.get("ratelimit")).toBe(`"${policy}";r=0;t=${retryAfter}`);
  return retryAfter;
}

const tierOfPartner = async (t: Tenant) =>
  (await expectOk(call("GET", `/v1/partners/${t.partnerId}`, { token: t.operator }))).rate_limit;

const setTier = (t: Tenant, rate_limit: string) =>
  expectOk(call("PATCH", `/v1/partners/${t.partnerId}`, { token: t.operator, body: { rate_limit } }));

describe("configuration", () => {
  it("states the limits wrangler.toml gives the bindings", () => {
    const configured = Object.fromEntries(env.TEST_RATELIMITS.map((r) => [r.name, r]));
    for (const policy of Object.values(RATE_LIMIT_POLICIES)) {
      expect(configured[policy.binding]).toEqual({
        name: policy.binding,
        limit: policy.quota,
        period: policy.window,
      });
    }
    expect(Object.keys(configured).sort()).toEqual(
      Object.values(RATE_LIMIT_POLICIES)
        .map((p) => p.binding)
        .sort(),
    );
  });

  it("puts partners' credentials under their partner's tier, operators under raised, vendors under standard", () => {
    expect(tierOf({ role: "partner", rateLimit: "unlimited" })).toBe("unlimited");
    expect(tierOf({ role: "service", rateLimit: "raised" })).toBe("raised");
    expect(tierOf({ role: "customer", rateLimit: "standard" })).toBe("standard");
    expect(tierOf({ role: "account", rateLimit: "raised" })).toBe("raised");
    expect(tierOf({ role: "operator", rateLimit: null })).toBe("raised");
    expect(tierOf({ role: "vendor", rateLimit: null })).toBe("standard");
  });
});

describe("per credential", () => {
  it("answers 429 problem+json under /v1 past the tier's limit, and follows the tier the operator sets", async () => {
    const t = await tenant({ customers: 0 });
    expect(await tierOfPartner(t)).toBe("standard");
    const list = () => call("GET", "/v1/customers", { token: t.partnerKey });
    // The burst takes a few seconds (more on a busy machine); the rest must share its window.
    await windowWithRoom(30);

    const first = await burst(STANDARD + 5, list);
    expect(first.tally(200)).toBe(STANDARD);
    expect(first.tally(429)).toBe(5);
    const r = first.limited!;
    expect(r.headers.get("content-type")).toBe("application/problem+json");
    expect(r.body).toEqual({
      type: "https://stratus.dev/problems/too-many-requests",
      title: "Too Many Requests",
      status: 429,
      detail: expect.stringContaining("600 requests in 60 seconds"),
      instance: "/v1/customers",
      "violated-policies": ["standard"],
      request_id: r.headers.get("x-request-id"),
    });
    expectRateLimitHeaders(r, "standard", STANDARD);
    // Another credential of the same partner has its own count.
    const other = await expectOk(
      call("POST", `/v1/partners/${t.partnerId}/api-keys`, { token: t.operator, body: {} }),
      201,
    );
    expect((await call("GET", "/v1/customers", { token: other.token })).status).toBe(200);

    // unlimited: no limiter is consulted, so the exhausted standard count no longer matters.
    expect((await setTier(t, "unlimited")).rate_limit).toBe("unlimited");
    expect((await burst(50, list)).tally(200)).toBe(50);
    // raised: a count of its own, far from its limit.
    expect((await setTier(t, "raised")).rate_limit).toBe("raised");
    expect((await list()).status).toBe(200);
    // Back to standard: the window's count is still spent.
    await setTier(t, "standard");
    expect((await list()).status).toBe(429);
    expect(await tierOfPartner(t)).toBe("standard");
  }, 120_000);

  it("answers the quota API's overLimit fault with 429 and retryAfter under /account/v1.0", async () => {
    const t = await tenant({ customers: 0 });
    const pending = () => call("GET", "/account/v1.0/commissions", { token: t.serviceToken });
    await windowWithRoom(20);

    const { tally, limited } = await burst(STANDARD + 1, pending);
    expect(tally(200)).toBe(STANDARD);
    expect(tally(429)).toBe(1);
    const r = limited!;
    expect(r.headers.get("content-type")).toMatch(/^application\/json/);
    const retryAfter = expectRateLimitHeaders(r, "standard", STANDARD);
    expect(r.body).toEqual({
      overLimit: { message: expect.any(String), code: 429, retryAfter: String(retryAfter) },
    });
  }, 120_000);

  it("lets a partner be created in a tier, and only the operator change it", async () => {
    const t = await tenant({ customers: 0 });
    const created = await expectOk(
      call("POST", "/v1/partners", { token: t.operator, body: { name: unique("p"), rate_limit: "raised" } }),
      201,
    );
    expect(created).toEqual({
      id: expect.any(String),
      name: expect.any(String),
      rate_limit: "raised",
      created_at: expect.any(String),
    });

    const byPartner = await call("PATCH", `/v1/partners/${t.partnerId}`, {
      token: t.partnerKey,
      body: { rate_limit: "unlimited" },
    });
    expect(byPartner.status).toBe(403);
    const byService = await call("PATCH", `/v1/partners/${t.partnerId}`, {
      token: t.serviceToken,
      body: { rate_limit: "unlimited" },
    });
    expect(byService.status).toBe(403);
    expect(await tierOfPartner(t)).toBe("standard");

    const unknown = await call("PATCH", `/v1/partners/${t.partnerId}`, {
      token: t.operator,
      body: { rate_limit: "infinite" },
    });
    expect(unknown.status).toBe(400);
    expect(unknown.body.errors).toEqual([{ point: "/rate_limit", message: expect.any(String) }]);
    const extra = await call("PATCH", `/v1/partners/${t.partnerId}`, {
      token: t.operator,
      body: { created_at: "2020-01-01T00:00:00Z" },
    });
    expect(extra.status).toBe(400);
    const missing = await call("PATCH", "/v1/partners/00000000-0000-7000-8000-000000000000", {
      token: t.operator,
      body: { rate_limit: "raised" },
    });
    expect(missing.status).toBe(404);

    const renamed = await expectOk(
      call("PATCH", `/v1/partners/${t.partnerId}`, { token: t.operator, body: { name: "Renamed" } }),
    );
    expect(renamed).toMatchObject({ id: t.partnerId, name: "Renamed", rate_limit: "standard" });
  });
});

describe("failed authentications per address", () => {
  it("answers 429 past the limit, even to a valid credential, and only from that address", async () => {
    const t = await tenant({ customers: 0 });
    const parsed = parseToken(t.partnerKey)!;
    const wrong = `pk.${parsed.id}.${"x".repeat(parsed.secret.length)}`;
    const address = `198.51.100.${Math.floor(Math.random() * 250) + 1}-${unique("ip")}`;
    const other = `203.0.113.7-${unique("ip")}`;
    const from = (ip: string, token: string) =>
      call("GET", "/v1/customers", { token, headers: { "cf-connecting-ip": ip } });
    await windowWithRoom(15);

    const { statuses, limited } = await burst(FAILURES + 1, () => from(address, wrong), 1);
    expect(statuses).toEqual([...Array(FAILURES).fill(401), 429]);
    expect(limited!.headers.get("content-type")).toBe("application/problem+json");
    expect(limited!.body).toMatchObject({ status: 429, "violated-policies": ["auth-failures"] });
    expectRateLimitHeaders(limited!, "auth-failures", FAILURES);

    // The right key from that address: still 429, without its credential's count being touched.
    const right = await from(address, t.partnerKey);
    expect(right.status).toBe(429);
    expectRateLimitHeaders(right, "auth-failures", FAILURES);
    // Any other address is unaffected, failing or not.
    expect((await from(other, t.partnerKey)).status).toBe(200);
    expect((await from(other, wrong)).status).toBe(401);
    // Public routes are never limited.
    for (const path of ["/healthz", "/openapi.json", "/account/v1.0/resources"]) {
      const r = await call("GET", path, { headers: { "cf-connecting-ip": address } });
      expect(r.status).toBe(200);
    }
  });

  it("answers the quota API's overLimit fault past the limit under /account/v1.0", async () => {
    const address = `192.0.2.1-${unique("ip")}`;
    const bad = () =>
      call("GET", "/account/v1.0/quotas", {
        token: "usr.00000000-0000-7000-8000-000000000000.nope",
        headers: { "cf-connecting-ip": address },
      });
    await windowWithRoom(15);

    const { statuses, limited } = await burst(FAILURES + 1, bad, 1);
    expect(statuses).toEqual([...Array(FAILURES).fill(401), 429]);
    const retryAfter = expectRateLimitHeaders(limited!, "auth-failures", FAILURES);
    expect(limited!.body).toEqual({
      overLimit: { message: expect.any(String), code: 429, retryAfter: String(retryAfter) },
    });
  });

  it("under the Astakos dialect, refuses only the failing: a service relays its users' tokens from one address", async () => {
    const t = await tenant({ customers: 1 });
    const address = `192.0.2.2-${unique("ip")}`;
    const headers = { "cf-connecting-ip": address };
    // astakosclient's authenticate() for each user of the service, as Cyclades sends it: stale tokens.
    const authenticate = (token: string) =>
      call("POST", "/identity/v2.0/tokens", {
        headers: { ...headers, "x-auth-token": token },
        body: { auth: { token: { id: token } } },
      });
    const stale = "usr.00000000-0000-7000-8000-000000000000.nope";
    await windowWithRoom(15);

    const { statuses } = await burst(FAILURES + 1, () => authenticate(stale), 1);
    expect(statuses).toEqual([...Array(FAILURES).fill(401), 429]);
    // The service's own calls and its other users' authentications go on; the failing still get 429.
    const serviceCall = await call("GET", "/account/v1.0/commissions", { token: t.serviceToken, headers });
    expect(serviceCall.status).toBe(200);
    const user = await authenticate(t.userTokens[0]!);
    expect(user.status).toBe(200);
    expect(user.body.access.user.id).toBe(t.customers[0]);
    expect((await authenticate(stale)).status).toBe(429);
  });

  it("counts each API family apart: a service's stale tokens leave a partner on its address its /v1 and /api", async () => {
    const t = await tenant({ customers: 0 });
    // One egress (a NAT) shared by a Synnefo service and a partner's and a vendor's integrations.
    const address = `192.0.2.4-${unique("ip")}`;
    const headers = { "cf-connecting-ip": address };
    const stale = "usr.00000000-0000-7000-8000-000000000000.nope";
    const relay = () =>
      call("POST", "/identity/v2.0/tokens", { headers, body: { auth: { token: { id: stale } } } });
    await windowWithRoom(20);

    const quota = await burst(FAILURES + 1, relay, 1);
    expect(quota.statuses).toEqual([...Array(FAILURES).fill(401), 429]);
    // The partner's key and the vendor API are not the quota API's: their counts are their own.
    expect((await call("GET", "/v1/customers", { token: t.partnerKey, headers })).status).toBe(200);
    const vendor = await call("GET", "/api/subscription/00000000-0000-7000-8000-000000000000", {
      headers: { ...headers, "cmw-auth-token": "vnd.00000000-0000-7000-8000-000000000000.nope" },
    });
    expect(vendor.status).toBe(401);
    // A brute force on /v1 from the address is still stopped at the family's own limit.
    const wrong = `pk.${parseToken(t.partnerKey)!.id}.${"x".repeat(43)}`;
    const partner = await burst(
      FAILURES + 1,
      () => call("GET", "/v1/customers", { token: wrong, headers }),
      1,
    );
    expect(partner.statuses).toEqual([...Array(FAILURES).fill(401), 429]);
    expect((await call("GET", "/v1/customers", { token: t.partnerKey, headers })).status).toBe(429);
  });

  it("under the Astakos dialect, still refuses a blocked address a valid credential the dialect does not take", async () => {
    const t = await tenant({ customers: 1 });
    const address = `192.0.2.3-${unique("ip")}`;
    const headers = { "cf-connecting-ip": address };
    const authenticate = (token: string) =>
      call("POST", "/identity/v2.0/tokens", { headers, body: { auth: { token: { id: token } } } });
    await windowWithRoom(15);

    const { statuses } = await burst(
      FAILURES + 1,
      () => authenticate("usr.00000000-0000-7000-8000-000000000000.nope"),
      1,
    );
    expect(statuses.at(-1)).toBe(429);
    // A partner's or the operator's key is good nowhere here: answered otherwise than a failing
    // one, it would tell the blocked address which /v1 keys are good, at any rate.
    for (const r of [
      await authenticate(t.partnerKey),
      await call("GET", "/account/v1.0/commissions", { token: t.operator, headers }),
    ]) {
      expect(r.status, r.text).toBe(429);
      expect(r.body).toMatchObject({ overLimit: { code: 429 } });
    }
    // The dialect's own credentials go on.
    expect((await authenticate(t.userTokens[0]!)).status).toBe(200);
  });
});
