import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { armFault, disarmFaults } from "../../src/domain/faults";
import { call, ownProduct, tenant } from "../helpers";

/**
 * A conditional write (`If-Match`) of a customer, a partner or a product under an
 * `Idempotency-Key` whose first attempt wrote and then died before its answer was kept (README,
 * "ETag and If-Match": "An Idempotency-Key replay wins"): the same request again must answer the
 * change as done, never 412 for a change its own first attempt made (RFC 9110 §13.1.1). Before,
 * nothing about the check was recorded with the key: the retry compared its tag with the
 * representation its first attempt had changed, and answered 412 "it changed since it was read".
 */

/** D1 whose statements matching `pattern` fail, once; everything else goes through. */
function failingOnce(db: D1Database, pattern: RegExp): D1Database {
  let armed = true;
  const wrap = <T extends D1Database | D1DatabaseSession>(target: T): T =>
    new Proxy(target, {
      get(t, key) {
        if (key === "prepare")
          return (sql: string) => {
            if (armed && pattern.test(sql)) {
              armed = false;
              throw new Error("D1 is down");
            }
            return t.prepare(sql);
          };
        if (key === "withSession") return (start?: string) => wrap((t as D1Database).withSession(start));
        const value = Reflect.get(t, key);
        return typeof value === "function" ? value.bind(t) : value;
      },
    });
  return wrap(db);
}

/** Keeping the answer with its key fails: the write is done, its answer is a 500. */
const keepingFails = () =>
  Object.create(env, {
    DB: { value: failingOnce(env.DB, /^update "idempotency_keys" set "status"/i) },
  }) as Env;

afterEach(disarmFaults);

describe("a keyed PATCH /v1/customers/{id} under If-Match whose first attempt died after writing", () => {
  it("answers the change as done when sent again, with the customer as it now is", async () => {
    const t = await tenant({ customers: 1 });
    const path = `/v1/customers/${t.customers[0]}`;
    const etag = (await call("GET", path, { token: t.partnerKey })).headers.get("etag") as string;
    const request = {
      token: t.partnerKey,
      body: { name: "renamed", email: "ops@example.com" },
      headers: { "if-match": etag, "idempotency-key": "rename-once" },
    };
    armFault("request.answered");
    const first = await call("PATCH", path, request);
    expect(first.status).toBe(500);
    const again = await call("PATCH", path, request);
    expect(again.status, again.text).toBe(200);
    expect(again.body).toMatchObject({ name: "renamed", email: "ops@example.com" });
    const read = await call("GET", path, { token: t.partnerKey });
    expect(again.headers.get("etag")).toBe(read.headers.get("etag"));
  });

  it("so does one whose answer could not be kept (D1 failed), once its lock ran out", async () => {
    const t = await tenant({ customers: 1 });
    const path = `/v1/customers/${t.customers[0]}`;
    const etag = (await call("GET", path, { token: t.partnerKey })).headers.get("etag") as string;
    const request = {
      token: t.partnerKey,
      body: { name: "renamed" },
      headers: { "if-match": etag, "idempotency-key": "rename-kept-fails" },
    };
    const first = await call("PATCH", path, { ...request, env: keepingFails() });
    expect(first.status).toBe(500);
    // Its lock runs out (60 s): the retry takes the key over.
    await env.DB.prepare(
      "UPDATE idempotency_keys SET locked_until = '2000-01-01T00:00:00.000Z' WHERE key = ?",
    )
      .bind("rename-kept-fails")
      .run();
    const again = await call("PATCH", path, request);
    expect(again.status, again.text).toBe(200);
    expect(again.body.name).toBe("renamed");
  });

  it("still answers 412 when someone else changed it to something else in between", async () => {
    const t = await tenant({ customers: 1 });
    const path = `/v1/customers/${t.customers[0]}`;
    const etag = (await call("GET", path, { token: t.partnerKey })).headers.get("etag") as string;
    const request = {
      token: t.partnerKey,
      body: { name: "mine" },
      headers: { "if-match": etag, "idempotency-key": "rename-lost" },
    };
    armFault("request.answered");
    expect((await call("PATCH", path, request)).status).toBe(500);
    const other = await call("PATCH", path, { token: t.partnerKey, body: { name: "theirs" } });
    expect(other.status).toBe(200);
    const again = await call("PATCH", path, request);
    expect(again.status, again.text).toBe(412);
    expect((await call("GET", path, { token: t.partnerKey })).body.name).toBe("theirs");
  });

  it("a fresh request with a stale tag is still refused, its change in effect or not", async () => {
    const t = await tenant({ customers: 1 });
    const path = `/v1/customers/${t.customers[0]}`;
    const etag = (await call("GET", path, { token: t.partnerKey })).headers.get("etag") as string;
    expect((await call("PATCH", path, { token: t.partnerKey, body: { name: "x" } })).status).toBe(200);
    const stale = await call("PATCH", path, {
      token: t.partnerKey,
      body: { name: "x" },
      headers: { "if-match": etag, "idempotency-key": "fresh-stale" },
    });
    expect(stale.status).toBe(412);
  });
});

describe("a keyed PATCH /v1/partners/{id} under If-Match whose first attempt died after writing", () => {
  it("answers the change as done when sent again", async () => {
    const t = await tenant({ customers: 0 });
    const path = `/v1/partners/${t.partnerId}`;
    const etag = (await call("GET", path, { token: t.operator })).headers.get("etag") as string;
    const request = {
      token: t.operator,
      body: { rate_limit: "raised" },
      headers: { "if-match": etag, "idempotency-key": `raise-${t.partnerId}` },
    };
    armFault("request.answered");
    expect((await call("PATCH", path, request)).status).toBe(500);
    const again = await call("PATCH", path, request);
    expect(again.status, again.text).toBe(200);
    expect(again.body.rate_limit).toBe("raised");
  });
});

describe("a keyed PUT /v1/products/{id} under If-Match whose first attempt died after writing", () => {
  it("answers the change as done when sent again", async () => {
    const t = await tenant({ customers: 1 });
    const { product } = await ownProduct(t);
    const path = `/v1/products/${product}`;
    const read = await call("GET", path, { token: t.operator });
    const { id: _id, delivery: _delivery, vendor: _vendor, ...asSent } = read.body;
    const request = {
      token: t.operator,
      body: { ...asSent, unit_price: "0.25" },
      headers: { "if-match": read.headers.get("etag") as string, "idempotency-key": `reprice-${product}` },
    };
    armFault("request.answered");
    expect((await call("PUT", path, request)).status).toBe(500);
    const again = await call("PUT", path, request);
    expect(again.status, again.text).toBe(200);
    expect(again.body.unit_price).toBe("0.25");
  });
});

describe("a keyed PUT /v1/products/{id} under If-Match answered 200 and sent again", () => {
  it("answers 200 again (its answer, which may show a secret, is never kept: the same request runs again)", async () => {
    const t = await tenant({ customers: 1 });
    const { product } = await ownProduct(t);
    const path = `/v1/products/${product}`;
    const read = await call("GET", path, { token: t.operator });
    const { id: _id, delivery: _delivery, vendor: _vendor, ...asSent } = read.body;
    const request = {
      token: t.operator,
      body: { ...asSent, name: "renamed" },
      headers: { "if-match": read.headers.get("etag") as string, "idempotency-key": `rename-${product}` },
    };
    const first = await call("PUT", path, request);
    expect(first.status, first.text).toBe(200);
    const again = await call("PUT", path, request);
    expect(again.status, again.text).toBe(200);
    expect(again.body).toEqual(first.body);
  });
});
