import { createExecutionContext } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { findCustomer, updateCustomer } from "../../src/db/customers";
import { findProductById, upsertProduct } from "../../src/db/products";
import worker from "../../src/index";
import { subscriptionObject } from "../../src/objects/subscription-object";
import {
  basic,
  call,
  expectOk,
  type Reply,
  type Tenant,
  tenant,
  tenantWithCatalog,
  unique,
} from "../helpers";

/**
 * The HTTP conventions every family shares: ETag and If-Match, CORS, the request id, HEAD, OPTIONS
 * and Allow, 415 for a body that is not JSON, each family's WWW-Authenticate, repeated credential
 * headers, and a GET behind every Location.
 */

const setup = () => tenantWithCatalog(1);

async function buyOne(t: Tenant, resource = "cpu") {
  const r = await call("POST", "/v1/subscriptions/", {
    token: t.partnerKey,
    body: { objects: [{ customer: t.customers[0], resource, amount: 2, period: "1 month" }] },
  });
  expect(r.status, r.text).toBe(201);
  return r.body.objects[0] as { id: string };
}

function expectProblem(r: Reply, status: number, type: string) {
  expect(r.status, r.text).toBe(status);
  expect(r.headers.get("content-type")).toBe("application/problem+json");
  expect(r.body).toMatchObject({ type: `https://stratus.dev/problems/${type}`, status });
}

const STRONG_TAG = /^"[0-9a-f]{16}"$/;

describe("ETag and If-Match on subscriptions", () => {
  it("tags a read strongly, answers HEAD and If-None-Match with it, and changes it with the subscription", async () => {
    const t = await setup();
    const { id } = await buyOne(t);
    const path = `/v1/subscriptions/${id}/`;
    const read = await call("GET", path, { token: t.partnerKey });
    const etag = read.headers.get("etag")!;
    expect(etag).toMatch(STRONG_TAG);
    expect((await call("GET", path, { token: t.partnerKey })).headers.get("etag")).toBe(etag);
    const head = await call("HEAD", path, { token: t.partnerKey });
    expect(head.status).toBe(200);
    expect(head.text).toBe("");
    expect(head.headers.get("etag")).toBe(etag);
    expect(head.headers.get("content-type")).toBe("application/json");
    const unchanged = await call("GET", path, { token: t.partnerKey, headers: { "if-none-match": etag } });
    expect(unchanged.status).toBe(304);
    expect(unchanged.text).toBe("");
    expect(unchanged.headers.get("etag")).toBe(etag);
    const other = await call("GET", path, { token: t.partnerKey, headers: { "if-none-match": '"0"' } });
    expect(other.status).toBe(200);

    const changed = await call("PATCH", path, {
      token: t.partnerKey,
      body: { auto_renew: true },
      headers: { "if-match": etag },
    });
    expect(changed.status, changed.text).toBe(200);
    const newTag = changed.headers.get("etag")!;
    expect(newTag).toMatch(STRONG_TAG);
    expect(newTag).not.toBe(etag);
    // The answer's tag is the one a read now gives.
    expect((await call("GET", path, { token: t.partnerKey })).headers.get("etag")).toBe(newTag);
  });

  it("refuses a write whose If-Match is stale, weak or bogus with 412, and changes nothing", async () => {
    const t = await setup();
    const { id } = await buyOne(t);
    const path = `/v1/subscriptions/${id}/`;
    const stale = (await call("GET", path, { token: t.partnerKey })).headers.get("etag")!;
    await expectOk(call("PATCH", path, { token: t.partnerKey, body: { auto_renew: true } }));
    const current = (await call("GET", path, { token: t.partnerKey })).headers.get("etag")!;
    for (const ifMatch of [stale, `W/${current}`, '"bogus"']) {
      const r = await call("PATCH", path, {
        token: t.partnerKey,
        body: { auto_renew: false },
        headers: { "if-match": ifMatch },
      });
      expectProblem(r, 412, "precondition-failed");
      const gone = await call("DELETE", path, { token: t.partnerKey, headers: { "if-match": ifMatch } });
      expectProblem(gone, 412, "precondition-failed");
    }
    const after = await call("GET", path, { token: t.partnerKey });
    expect(after.body).toMatchObject({ auto_renew: true, ended_at: null });
    expect(after.headers.get("etag")).toBe(current);
    // `*` matches any existing subscription; a list matches if one of its tags does.
    const any = await call("PATCH", path, {
      token: t.partnerKey,
      body: { auto_renew: false },
      headers: { "if-match": "*" },
    });
    expect(any.status, any.text).toBe(200);
    const tag = any.headers.get("etag")!;
    const cancelled = await call("DELETE", path, {
      token: t.partnerKey,
      headers: { "if-match": `"nope", ${tag}` },
    });
    expect(cancelled.status, cancelled.text).toBe(200);
    expect(cancelled.body.end_reason).toBe("cancelled");
  });

  it("lets exactly one of two writes made from the same read through", async () => {
    const t = await setup();
    // A cloud of 2, resized to 3 and to 4: each write changes it (a write that changes nothing,
    // as `auto_renew` set to the value it has, is answered as done whichever lands first).
    const { id } = await buyOne(t, "cumulus");
    const path = `/v1/subscriptions/${id}/`;
    const etag = (await call("GET", path, { token: t.partnerKey })).headers.get("etag")!;
    const replies = await Promise.all(
      [3, 4].map((amount) =>
        call("PATCH", path, { token: t.partnerKey, body: { amount }, headers: { "if-match": etag } }),
      ),
    );
    // Both may pass the read check; the object then lets only the first write at that version in.
    expect(replies.map((r) => r.status).sort()).toEqual([200, 412]);
    const won = replies.find((r) => r.status === 200)!;
    expect((await expectOk(call("GET", path, { token: t.partnerKey }))).amount).toBe(won.body.amount);
  });

  it("checks the version in the object's write: a change in between answers 412, a change already made answers done", async () => {
    const t = await setup();
    const { id } = await buyOne(t, "cumulus");
    const object = subscriptionObject(env, id);
    const version = (await object.get())!.version;
    expect((await object.setAutoRenew(true, version)).ok).toBe(true);
    // The same version again: the record moved on. A different value is refused...
    const refused = await object.setAutoRenew(false, version);
    expect(refused).toEqual({ ok: false, error: expect.objectContaining({ kind: "precondition_failed" }) });
    expect((await object.changeAmount(3, new Date(), version)).ok).toBe(false);
    expect((await object.cancel(new Date(), version)).ok).toBe(false);
    // ...the value it already has (a retry of that very change) is answered as done, unchanged.
    const done = await object.setAutoRenew(true, version);
    expect(done.ok && done.value.version).toBe(version + 1);
    const record = (await object.get())!;
    expect(record).toMatchObject({ autoRenew: true, amount: 2, endedAt: null, version: version + 1 });
  });

  it("replays a keyed conditional write as it was answered, though its tag is stale now", async () => {
    const t = await setup();
    const { id } = await buyOne(t);
    const path = `/v1/subscriptions/${id}/`;
    const etag = (await call("GET", path, { token: t.partnerKey })).headers.get("etag")!;
    const headers = { "if-match": etag, "idempotency-key": unique("key") };
    const first = await call("PATCH", path, { token: t.partnerKey, body: { auto_renew: true }, headers });
    expect(first.status, first.text).toBe(200);
    const again = await call("PATCH", path, { token: t.partnerKey, body: { auto_renew: true }, headers });
    expect(again.status).toBe(200);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(again.headers.get("etag")).toBe(first.headers.get("etag"));
    expect(again.text).toBe(first.text);
  });
});

describe("ETag and If-Match on customers and products", () => {
  it("updates a customer only at the version its If-Match names", async () => {
    const t = await tenant({ customers: 1 });
    const path = `/v1/customers/${t.customers[0]}`;
    const read = await call("GET", path, { token: t.partnerKey });
    const etag = read.headers.get("etag")!;
    expect(etag).toMatch(STRONG_TAG);
    const renamed = await call("PATCH", path, {
      token: t.partnerKey,
      body: { name: "Renamed" },
      headers: { "if-match": etag },
    });
    expect(renamed.status, renamed.text).toBe(200);
    expect(renamed.headers.get("etag")).toBe(
      (await call("GET", path, { token: t.partnerKey })).headers.get("etag"),
    );
    const stale = await call("PATCH", path, {
      token: t.partnerKey,
      body: { name: "Lost update" },
      headers: { "if-match": etag },
    });
    expectProblem(stale, 412, "precondition-failed");
    expect((await call("GET", path, { token: t.partnerKey })).body.name).toBe("Renamed");
    // The version compared is part of the UPDATE: a change between the check and it wins.
    const { version } = (await findCustomer(env, t.customers[0]!, null))!;
    expect(await updateCustomer(env, t.customers[0]!, { name: "Racer" }, version)).toMatchObject({
      version: version + 1,
    });
    expect(await updateCustomer(env, t.customers[0]!, { name: "Too late" }, version)).toBeUndefined();
    expect((await call("GET", path, { token: t.partnerKey })).body.name).toBe("Racer");
  });

  it("updates a product only at the version its If-Match names, and never creates one under If-Match", async () => {
    const t = await setup();
    const operator = t.operator;
    const product = { name: "cpu", kind: "timed", unit: "GHz", unit_price: "0.02", currency: "EUR" };
    const put = (id: string, ifMatch: string, body = product) =>
      call("PUT", `/v1/products/${id}`, {
        token: operator,
        body: { ...body, quota_resource: "stratus.cpu" },
        headers: { "if-match": ifMatch },
      });
    const read = await call("GET", "/v1/products/cpu", { token: t.partnerKey });
    const etag = read.headers.get("etag")!;
    expect(etag).toMatch(STRONG_TAG);
    const updated = await put("cpu", etag, { ...product, name: "Compute" });
    expect(updated.status, updated.text).toBe(200);
    expect(updated.headers.get("etag")).toBe(
      (await call("GET", "/v1/products/cpu", { token: t.partnerKey })).headers.get("etag"),
    );
    expectProblem(await put("cpu", etag, product), 412, "precondition-failed");
    expect((await call("GET", "/v1/products/cpu", { token: operator })).body.name).toBe("Compute");
    const missing = unique("nothing");
    expectProblem(await put(missing, "*"), 412, "precondition-failed");
    expect((await call("GET", `/v1/products/${missing}`, { token: operator })).status).toBe(404);
    // The version compared is part of the UPDATE, as for customers.
    const current = (await findProductById(env, "cpu"))!;
    const { version, ...rest } = current;
    expect(await upsertProduct(env, { ...rest, name: "cpu" }, version - 1)).toBeUndefined();
    expect(await upsertProduct(env, { ...rest, name: "cpu" }, version)).toMatchObject({
      version: version + 1,
    });
  });
});

const CORS_ON = { ...env, CORS_ORIGINS: "https://console.example.com, https://admin.example.com/" };

/** The Worker's own fetch with CORS_ORIGINS set, as a deployment with an allowlist has it. */
const withCors = (path: string, init: RequestInit<IncomingRequestCfProperties>) =>
  worker.fetch(
    new Request<unknown, IncomingRequestCfProperties>(`http://stratus.test${path}`, init),
    CORS_ON,
    createExecutionContext(),
  );

describe("CORS", () => {
  it("is off by default: no CORS headers, and a preflight is a plain 204 with Allow", async () => {
    const origin = { origin: "https://console.example.com" };
    const r = await call("GET", "/healthz", { headers: origin });
    expect(r.status).toBe(200);
    expect(r.headers.get("access-control-allow-origin")).toBeNull();
    const preflight = await call("OPTIONS", "/v1/customers", {
      headers: { ...origin, "access-control-request-method": "POST" },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("allow")).toBe("GET, HEAD, POST, OPTIONS");
    expect(preflight.headers.get("access-control-allow-methods")).toBeNull();
  });

  it("answers a listed origin's preflight and exposes the headers clients read", async () => {
    const t = await tenant({ customers: 1 });
    const preflight = await withCors(`/v1/customers/${t.customers[0]}`, {
      method: "OPTIONS",
      headers: {
        origin: "https://admin.example.com",
        "access-control-request-method": "PATCH",
        "access-control-request-headers": "x-api-key, if-match, content-type",
      },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-origin")).toBe("https://admin.example.com");
    expect(preflight.headers.get("access-control-allow-methods")).toBe("GET, HEAD, PATCH, OPTIONS");
    const allowed = preflight.headers.get("access-control-allow-headers")!.toLowerCase();
    for (const name of [
      "x-api-key",
      "if-match",
      "content-type",
      "idempotency-key",
      "authorization",
      "x-d1-bookmark",
    ])
      expect(allowed).toContain(name);
    expect(preflight.headers.get("access-control-max-age")).toBe("7200");
    expect(preflight.headers.get("vary")).toContain("Origin");

    const read = await withCors(`/v1/customers/${t.customers[0]}`, {
      headers: { origin: "https://console.example.com", "x-api-key": t.partnerKey },
    });
    expect(read.status).toBe(200);
    expect(read.headers.get("access-control-allow-origin")).toBe("https://console.example.com");
    const exposed = read.headers.get("access-control-expose-headers")!;
    for (const name of [
      "Location",
      "Retry-After",
      "ETag",
      "X-Request-Id",
      "Idempotent-Replayed",
      "X-D1-Bookmark",
    ])
      expect(exposed).toContain(name);
    expect(read.headers.get("vary")).toContain("Origin");
    // Errors carry them too, so the page can read the problem.
    const denied = await withCors("/v1/customers", { headers: { origin: "https://console.example.com" } });
    expect(denied.status).toBe(401);
    expect(denied.headers.get("access-control-allow-origin")).toBe("https://console.example.com");
  });

  it("gives an origin not listed nothing but Vary", async () => {
    const r = await withCors("/healthz", { headers: { origin: "https://evil.example.net" } });
    expect(r.status).toBe(200);
    expect(r.headers.get("access-control-allow-origin")).toBeNull();
    expect(r.headers.get("vary")).toContain("Origin");
    const preflight = await withCors("/v1/customers", {
      method: "OPTIONS",
      headers: { origin: "https://evil.example.net", "access-control-request-method": "POST" },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-origin")).toBeNull();
    expect(preflight.headers.get("access-control-allow-methods")).toBeNull();
  });
});

describe("X-Request-Id", () => {
  it("generates one, echoes a sane one, takes cf-ray, and puts it in problem bodies", async () => {
    const generated = await call("GET", "/healthz");
    expect(generated.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    const echoed = await call("GET", "/v1/nothing", { headers: { "x-request-id": "client-req-42" } });
    expect(echoed.headers.get("x-request-id")).toBe("client-req-42");
    expect(echoed.body.request_id).toBe("client-req-42");
    const ray = await call("GET", "/healthz", { headers: { "cf-ray": "8f2c1a2b3c4d5e6f-AMS" } });
    expect(ray.headers.get("x-request-id")).toBe("8f2c1a2b3c4d5e6f-AMS");
    for (const insane of ["has spaces", "x".repeat(201)]) {
      const r = await call("GET", "/healthz", { headers: { "x-request-id": insane, "cf-ray": "ray-1" } });
      expect(r.headers.get("x-request-id")).toBe("ray-1");
    }
  });

  it("keeps the cloudFault shape of the quota API: the id is in the header only", async () => {
    const r = await call("GET", "/account/v1.0/quotas", { headers: { "x-request-id": "quota-req" } });
    expect(r.status).toBe(401);
    expect(r.headers.get("x-request-id")).toBe("quota-req");
    expect(Object.keys(r.body)).toEqual(["unauthorized"]);
  });
});

describe("HEAD, OPTIONS and Allow", () => {
  it("answers HEAD for every GET, /healthz included, without a body", async () => {
    const r = await call("HEAD", "/healthz");
    expect(r.status).toBe(200);
    expect(r.text).toBe("");
    expect(r.headers.get("content-type")).toBe("application/json");
    expect((await call("HEAD", "/openapi.json")).status).toBe(200);
    // With the length its GET's body has: the runtime leaves it out of an answer with no body.
    for (const path of ["/healthz", "/account/v1.0/resources"]) {
      const get = await call("GET", path);
      const head = await call("HEAD", path);
      expect(head.headers.get("content-length"), path).toBe(
        String(new TextEncoder().encode(get.text).length),
      );
    }
  });

  it("names the methods a path serves in Allow, on 405 and OPTIONS", async () => {
    const t = await tenant({ customers: 1 });
    const r = await call("DELETE", "/v1/customers", { token: t.partnerKey });
    expectProblem(r, 405, "method-not-allowed");
    expect(r.headers.get("allow")).toBe("GET, HEAD, POST, OPTIONS");
    const head = await call("HEAD", `/v1/subscriptions/${t.customers[0]}/action`);
    expect(head.status).toBe(405);
    expect(head.headers.get("allow")).toBe("POST, OPTIONS");
    const options = await call("OPTIONS", `/v1/subscriptions/${t.customers[0]}/`);
    expect(options.status).toBe(204);
    expect(options.headers.get("allow")).toBe("GET, HEAD, PUT, PATCH, DELETE, OPTIONS");
    expect((await call("OPTIONS", "/v1/nowhere")).status).toBe(404);
    // Synnefo's answer to a wrong method: 405 `notAllowed` (faults.NotAllowed), with Allow.
    const quota = await call("PUT", "/account/v1.0/quotas");
    expect(quota.status).toBe(405);
    expect(quota.body).toEqual({
      notAllowed: { message: "PUT is not allowed on /account/v1.0/quotas", code: 405 },
    });
    expect(quota.headers.get("allow")).toBe("GET, HEAD, OPTIONS");
  });

  it("takes a literal path for its own, never for a parameter of another template", async () => {
    const t = await tenant({ customers: 1 });
    // `/v1/subscriptions/schema` is not a subscription `{id}`: its methods are its own.
    const options = await call("OPTIONS", "/v1/subscriptions/schema");
    expect(options.headers.get("allow")).toBe("GET, HEAD, OPTIONS");
    for (const method of ["PUT", "PATCH", "DELETE", "POST"]) {
      const r = await call(method, "/v1/subscriptions/schema", { token: t.partnerKey, body: {} });
      expectProblem(r, 405, "method-not-allowed");
      expect(r.headers.get("allow")).toBe("GET, HEAD, OPTIONS");
    }
    expect((await call("GET", "/v1/subscriptions/schema/", { token: t.partnerKey })).status).toBe(200);
    // Nor is `/account/v1.0/commissions/action` a commission's `{serial}`.
    const get = await call("GET", "/account/v1.0/commissions/action", { token: t.serviceToken });
    expect(get.status).toBe(405);
    expect(get.body.notAllowed.code).toBe(405);
    expect(get.headers.get("allow")).toBe("POST, OPTIONS");
    // pycloudsigma's `list_detail()` path is a list, not a subscription `{id}`.
    const detail = await call("OPTIONS", "/v1/subscriptions/detail/");
    expect(detail.headers.get("allow")).toBe("GET, HEAD, OPTIONS");
    expect((await call("OPTIONS", "/account/v1.0/commissions/action")).headers.get("allow")).toBe(
      "POST, OPTIONS",
    );
  });
  it("routes a path with a trailing slash as the template it names, and no other path", async () => {
    const t = await tenant({ customers: 1 });
    for (const path of ["/healthz", "/healthz/"]) {
      expect((await call("GET", path)).status, path).toBe(200);
    }
    const customer = `/v1/customers/${t.customers[0]}`;
    for (const path of [customer, `${customer}/`]) {
      expect((await call("GET", path, { token: t.partnerKey })).status, path).toBe(200);
    }
    for (const path of ["/v1//customers", "//v1/customers", "/v1/customers/x/y/z", "/healthzz", "/v1"]) {
      expectProblem(await call("GET", path, { token: t.partnerKey }), 404, "not-found");
    }
    // One trailing slash, not more (itty-router's own patterns took any number).
    for (const path of [`${customer}//`, `${customer}///`, "/healthz//", "/v1/customers//"]) {
      expectProblem(await call("GET", path, { token: t.partnerKey }), 404, "not-found");
    }
    const before = await call("GET", "/v1/customers", { token: t.partnerKey });
    const made = await call("POST", "/v1/customers//", {
      token: t.partnerKey,
      body: { name: unique("slashes") },
    });
    expectProblem(made, 404, "not-found");
    expect((await call("GET", "/v1/customers", { token: t.partnerKey })).body).toEqual(before.body);
  });
});

describe("415 for a body that is not JSON", () => {
  it("refuses another Content-Type, or none, and writes nothing; JSON with a charset is fine", async () => {
    const t = await tenant({ customers: 0 });
    const name = unique("typed");
    const raw = JSON.stringify({ name });
    for (const type of ["text/plain", "application/x-www-form-urlencoded", "application/jsonp"]) {
      const r = await call("POST", "/v1/customers", {
        token: t.partnerKey,
        raw,
        headers: { "content-type": type },
      });
      expectProblem(r, 415, "unsupported-media-type");
    }
    // Bytes get no Content-Type from fetch (a string would get text/plain): none at all is 415 too.
    const untyped = await exports.default.fetch("http://stratus.test/v1/customers", {
      method: "POST",
      headers: { "x-api-key": t.partnerKey },
      body: new TextEncoder().encode(raw),
    });
    expect(untyped.status).toBe(415);
    expect((await expectOk(call("GET", "/v1/customers", { token: t.partnerKey }))).objects).toEqual([]);
    const ok = await call("POST", "/v1/customers", {
      token: t.partnerKey,
      raw,
      headers: { "content-type": "application/json; charset=utf-8" },
    });
    expect(ok.status, ok.text).toBe(201);
    const merge = await call("PATCH", `/v1/customers/${ok.body.id}`, {
      token: t.partnerKey,
      raw: JSON.stringify({ name: "Merged" }),
      headers: { "content-type": "application/merge-patch+json" },
    });
    expect(merge.status, merge.text).toBe(200);
  });

  it("is not kept with the Idempotency-Key: the same request sent as JSON then runs", async () => {
    const t = await tenant({ customers: 0 });
    const key = unique("key");
    const raw = JSON.stringify({ name: "Keyed" });
    const wrong = await call("POST", "/v1/customers", {
      token: t.partnerKey,
      raw,
      headers: { "content-type": "text/plain", "idempotency-key": key },
    });
    expect(wrong.status).toBe(415);
    const right = await call("POST", "/v1/customers", {
      token: t.partnerKey,
      raw,
      headers: { "idempotency-key": key },
    });
    expect(right.status, right.text).toBe(201);
    expect(right.headers.get("idempotent-replayed")).toBeNull();
  });

  it("answers each family in its own format, and needs no Content-Type for an empty body", async () => {
    const t = await tenant({ customers: 1 });
    const fault = await call("POST", "/account/v1.0/commissions", {
      token: t.serviceToken,
      raw: "{}",
      headers: { "content-type": "text/plain" },
    });
    expect(fault.status).toBe(415);
    expect(fault.body).toEqual({ badMediaType: { message: expect.any(String), code: 415 } });
    const empty = await call("POST", `/v1/services/${t.serviceId}/tokens`, { token: t.operator });
    expect(empty.status, empty.text).toBe(201);
  });
});

describe("credentials", () => {
  it("names each family's own header in WWW-Authenticate", async () => {
    const challenges: Array<[string, string]> = [
      ["/v1/customers", 'ApiKey header="X-Api-Key", Bearer, Basic realm="stratus"'],
      ["/account/v1.0/quotas", 'ApiKey header="X-Auth-Token"'],
      ["/api/subscription/00000000-0000-7000-8000-000000000000", 'ApiKey header="CMW-Auth-Token"'],
    ];
    for (const [path, challenge] of challenges) {
      const r = await call("GET", path);
      expect(r.status, path).toBe(401);
      expect(r.headers.get("www-authenticate"), path).toBe(challenge);
    }
  });

  it("takes a credential header repeated with the same value as one; differing values stay 401", async () => {
    const t = await tenant({ customers: 1 });
    const twice = (name: string, first: string, second: string) => {
      const headers = new Headers({
        "cf-connecting-ip": `2001:db8:ffff::${Math.floor(Math.random() * 65535).toString(16)}`,
      });
      headers.append(name, first);
      headers.append(name, second);
      return headers;
    };
    const same = await exports.default.fetch("http://stratus.test/v1/customers", {
      headers: twice("x-api-key", t.partnerKey, t.partnerKey),
    });
    expect(same.status).toBe(200);
    const bearer = await exports.default.fetch("http://stratus.test/v1/customers", {
      headers: twice("authorization", `Bearer ${t.partnerKey}`, `Bearer ${t.partnerKey}`),
    });
    expect(bearer.status).toBe(200);
    const quota = await exports.default.fetch("http://stratus.test/account/v1.0/quotas", {
      headers: twice("x-auth-token", t.userTokens[0]!, t.userTokens[0]!),
    });
    expect(quota.status).toBe(200);
    const differing = await exports.default.fetch("http://stratus.test/v1/customers", {
      headers: twice("x-api-key", t.partnerKey, t.operator),
    });
    expect(differing.status).toBe(401);
  });

  it("refuses an X-Api-Key beside a different Bearer or Basic key (401); the same key twice is one", async () => {
    const t = await tenant({ customers: 1 });
    const send = (headers: Record<string, string>) => call("GET", "/v1/customers", { headers });
    const differing = [
      { "x-api-key": t.partnerKey, authorization: `Bearer ${t.operator}` },
      { "x-api-key": t.operator, authorization: `Bearer ${t.partnerKey}` },
      { "x-api-key": t.partnerKey, authorization: basic("me", t.operator).authorization },
    ];
    for (const headers of differing) {
      const r = await send(headers);
      expect(r.status, JSON.stringify(headers)).toBe(401);
      expect(r.headers.get("content-type")).toBe("application/problem+json");
    }
    const same = [
      { "x-api-key": t.partnerKey, authorization: `Bearer ${t.partnerKey}` },
      { "x-api-key": t.partnerKey, authorization: basic("me", t.partnerKey).authorization },
    ];
    for (const headers of same) expect((await send(headers)).status, JSON.stringify(headers)).toBe(200);
  });
});

describe("a GET behind every Location", () => {
  it("follows each Location a write answers to a 200, with the credential that wrote", async () => {
    const t = await setup();
    const locations: Array<[string, string | null]> = [];
    const keep = (r: Reply, token: string) => {
      expect(r.status, r.text).toBeLessThan(300);
      locations.push([token, r.headers.get("location")]);
      return r.body;
    };
    const op = t.operator;
    const partner = keep(await call("POST", "/v1/partners", { token: op, body: { name: unique("p") } }), op);
    keep(await call("POST", `/v1/partners/${partner.id}/api-keys`, { token: op, body: {} }), op);
    const service = keep(
      await call("POST", "/v1/services", { token: op, body: { partner: partner.id, name: unique("s") } }),
      op,
    );
    keep(await call("POST", `/v1/services/${service.id}/tokens`, { token: op, body: {} }), op);
    keep(await call("POST", "/v1/vendors", { token: op, body: { name: unique("v") } }), op);
    const pk = t.partnerKey;
    const customer = keep(await call("POST", "/v1/customers", { token: pk, body: { name: "c" } }), pk);
    keep(await call("POST", `/v1/customers/${customer.id}/tokens`, { token: pk, body: {} }), pk);
    const objects = [{ customer: t.customers[0], resource: "cpu", amount: 1, period: "1 month" }];
    const bought = keep(await call("POST", "/v1/subscriptions", { token: pk, body: { objects } }), pk);
    const id = bought.objects[0].id;
    keep(await call("POST", `/v1/subscriptions/${id}/action?do=extend`, { token: pk, body: {} }), pk);
    keep(
      await call("POST", "/v1/subscriptions", {
        token: pk,
        body: { objects },
        headers: { prefer: "respond-async" },
      }),
      pk,
    );
    expect(locations.every(([, location]) => location !== null)).toBe(true);
    for (const [token, location] of locations) {
      const r = await call("GET", location!, { token });
      // An operation answers 202 while it runs, then its result (a purchase's 201).
      const expected = location!.startsWith("/v1/operations/") ? [201, 202] : [200];
      expect(expected, `${location}: ${r.text}`).toContain(r.status);
    }
    const service200 = await call("GET", `/v1/services/${service.id}`, { token: op });
    expect(service200.body).toEqual(service);
    expect(service200.headers.get("etag")).toMatch(STRONG_TAG);
  });
});
