import { env } from "cloudflare:workers";
import { and, eq } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { database } from "../../src/db/client";
import { idempotencyKeys } from "../../src/db/schema";
import { parseToken } from "../../src/domain/credentials";
import { keyOwner, withIdempotency } from "../../src/http/idempotency";
import { call, expectOk, type Reply, type Tenant, tenant, tenantWithCatalog, unique } from "../helpers";

/** Idempotency-Key on /v1 writes, exercised on POST /v1/customers. */

const problem = (status: number) => ({
  type: expect.stringMatching(/^https:\/\/stratus\.dev\/problems\//),
  title: expect.any(String),
  status,
  detail: expect.any(String),
  instance: "/v1/customers",
  request_id: expect.any(String),
});

const create = (token: string, key: string | null, body: unknown) =>
  call("POST", "/v1/customers", {
    token,
    body,
    ...(key === null ? {} : { headers: { "idempotency-key": key } }),
  });

async function customerNames(token: string): Promise<string[]> {
  const list = await expectOk(call("GET", "/v1/customers", { token }));
  return list.objects.map((c: { name: string }) => c.name);
}

const replayed = (r: Reply) => r.headers.get("idempotent-replayed");

/** The owner of a tenant's partner keys' Idempotency-Keys. */
const partnerOwner = (t: Tenant) =>
  keyOwner({ role: "partner", credentialId: "", partnerId: t.partnerId, subjectId: t.partnerId });

/** The stored row of a partner key's Idempotency-Key, to age it as time would. */
function keyRow(t: Tenant, key: string) {
  return and(eq(idempotencyKeys.owner, partnerOwner(t)), eq(idempotencyKeys.key, key));
}

describe("Idempotency-Key", () => {
  it("replays the first answer byte for byte and creates one customer", async () => {
    const t = await tenant({ customers: 0 });
    const key = unique("key");
    const first = await create(t.partnerKey, key, { name: "Once" });
    const second = await create(t.partnerKey, key, { name: "Once" });
    expect(first.status).toBe(201);
    expect(second.status).toBe(201);
    expect(second.text).toBe(first.text);
    expect(second.headers.get("location")).toBe(first.headers.get("location"));
    expect(second.headers.get("content-type")).toBe(first.headers.get("content-type"));
    expect(replayed(first)).toBeNull();
    expect(replayed(second)).toBe("true");
    expect(await customerNames(t.partnerKey)).toEqual(["Once"]);
  });

  it("accepts the structured-field form of the key", async () => {
    const t = await tenant({ customers: 0 });
    const first = await create(t.partnerKey, "abc-1", { name: "Quoted" });
    const second = await create(t.partnerKey, '"abc-1"', { name: "Quoted" });
    expect(replayed(second)).toBe("true");
    expect(second.text).toBe(first.text);
  });

  it("answers 422 when the key is reused for a different request, and creates nothing", async () => {
    const t = await tenant({ customers: 0 });
    const key = unique("key");
    await expectOk(create(t.partnerKey, key, { name: "First" }), 201);
    const other = await create(t.partnerKey, key, { name: "Second" });
    expect(other.status).toBe(422);
    expect(other.headers.get("content-type")).toBe("application/problem+json");
    expect(other.body).toEqual(problem(422));
    expect(await customerNames(t.partnerKey)).toEqual(["First"]);
  });

  it("scopes keys to the credential", async () => {
    const a = await tenant({ customers: 0 });
    const b = await tenant({ customers: 0 });
    const key = unique("key");
    const fromA = await create(a.partnerKey, key, { name: "Same" });
    const fromB = await create(b.partnerKey, key, { name: "Same" });
    expect(fromA.status).toBe(201);
    expect(fromB.status).toBe(201);
    expect(replayed(fromB)).toBeNull();
    expect(fromB.body.id).not.toBe(fromA.body.id);
    expect(fromB.body.partner).toBe(b.partnerId);
  });

  it("replays an error answer too", async () => {
    const t = await tenant({ customers: 0 });
    const key = unique("key");
    const first = await create(t.partnerKey, key, { name: "" });
    const second = await create(t.partnerKey, key, { name: "" });
    expect(first.status).toBe(400);
    expect(first.body).toMatchObject({
      ...problem(400),
      errors: [expect.objectContaining({ point: "/name" })],
    });
    expect(replayed(first)).toBeNull();
    expect(second.status).toBe(400);
    expect(second.text).toBe(first.text);
    expect(replayed(second)).toBe("true");
    expect(await customerNames(t.partnerKey)).toEqual([]);
  });

  it("runs concurrent retries once: the others get the answer or 409", async () => {
    const t = await tenant({ customers: 0 });
    const key = unique("key");
    const replies = await Promise.all(
      Array.from({ length: 20 }, () => create(t.partnerKey, key, { name: "Concurrent" })),
    );
    const created = replies.filter((r) => r.status === 201);
    const conflicts = replies.filter((r) => r.status === 409);
    expect(created.length + conflicts.length).toBe(20);
    expect(created.length).toBeGreaterThan(0);
    expect(new Set(created.map((r) => r.text)).size).toBe(1);
    expect(created.filter((r) => replayed(r) === null)).toHaveLength(1);
    for (const r of conflicts) expect(r.body).toEqual(problem(409));
    expect(await customerNames(t.partnerKey)).toEqual(["Concurrent"]);
  });

  it("answers 409 while the first request holds the key, and takes over a lock that ran out", async () => {
    const t = await tenant({ customers: 0 });
    const key = unique("key");
    await expectOk(create(t.partnerKey, key, { name: "Stuck" }), 201);
    const db = database(env);
    const row = keyRow(t, key);
    const unfinished = { status: null, headers: null, body: null };
    const soon = new Date(Date.now() + 60_000).toISOString();
    await db
      .update(idempotencyKeys)
      .set({ ...unfinished, lockedUntil: soon })
      .where(row)
      .run();
    const busy = await create(t.partnerKey, key, { name: "Stuck" });
    expect(busy.status).toBe(409);
    expect(busy.body).toEqual(problem(409));

    const past = new Date(Date.now() - 1000).toISOString();
    await db.update(idempotencyKeys).set({ lockedUntil: past }).where(row).run();
    const other = await create(t.partnerKey, key, { name: "Other" });
    expect(other.status).toBe(422);
    // The first attempt recorded the id it created: the takeover finds that customer, never a second.
    const retry = await create(t.partnerKey, key, { name: "Stuck" });
    expect(retry.status).toBe(201);
    expect(replayed(retry)).toBe("true");
    expect(await customerNames(t.partnerKey)).toEqual(["Stuck"]);
  });

  it("treats an expired record as absent", async () => {
    const t = await tenant({ customers: 0 });
    const key = unique("key");
    const first = await create(t.partnerKey, key, { name: "Old" });
    const past = new Date(Date.now() - 1000).toISOString();
    await database(env).update(idempotencyKeys).set({ expiresAt: past }).where(keyRow(t, key)).run();
    const again = await create(t.partnerKey, key, { name: "New" });
    expect(again.status).toBe(201);
    expect(replayed(again)).toBeNull();
    expect(again.body.id).not.toBe(first.body.id);
    expect(await customerNames(t.partnerKey)).toEqual(["Old", "New"]);
  });

  it("does nothing without a key", async () => {
    const t = await tenant({ customers: 0 });
    const first = await create(t.partnerKey, null, { name: "Twice" });
    const second = await create(t.partnerKey, null, { name: "Twice" });
    expect(replayed(first)).toBeNull();
    expect(replayed(second)).toBeNull();
    expect(second.body.id).not.toBe(first.body.id);
    expect(await customerNames(t.partnerKey)).toEqual(["Twice", "Twice"]);
  });

  it.each([
    ["empty", ""],
    ["longer than 255 characters", "k".repeat(256)],
    ["not printable ASCII", "a\tb"],
  ])("answers 400 for a key that is %s", async (_, key) => {
    const t = await tenant({ customers: 0 });
    const r = await create(t.partnerKey, key, { name: "Never" });
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({
      ...problem(400),
      errors: [{ point: "/headers/idempotency-key", message: expect.any(String) }],
    });
    expect(await customerNames(t.partnerKey)).toEqual([]);
  });

  it("accepts a key of 255 characters", async () => {
    const t = await tenant({ customers: 0 });
    expect((await create(t.partnerKey, "k".repeat(255), { name: "Long" })).status).toBe(201);
  });
});

describe("withIdempotency after a failure that is not an answer", () => {
  it("releases the key so the request can be retried", async () => {
    const principal = {
      role: "partner" as const,
      credentialId: unique("cred"),
      partnerId: null,
      subjectId: null,
    };
    const request = () =>
      new Request("http://stratus.test/v1/things", { method: "POST", headers: { "idempotency-key": "k" } });
    const keyed = { body: "{}", requestId: "req-1", keepAnswer: true };
    const boom = () => Promise.reject(new Error("bug"));
    await expect(withIdempotency(request(), env, principal, keyed, boom)).rejects.toThrow("bug");
    const down = async () => new Response("down", { status: 503 });
    expect((await withIdempotency(request(), env, principal, keyed, down)).status).toBe(503);
    const ok = async () => Response.json({ ok: true }, { status: 201 });
    const done = await withIdempotency(request(), env, principal, keyed, ok);
    expect(done.status).toBe(201);
    expect(done.headers.get("idempotent-replayed")).toBeNull();
    const again = await withIdempotency(request(), env, principal, keyed, boom);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(await again.text()).toBe('{"ok":true}');
  });
});

describe("an answer that shows a secret, under an Idempotency-Key", () => {
  // The key is this test's own: its one row, whoever owns it.
  const storedBodies = async (key: string) => {
    const { results } = await env.DB.prepare("SELECT body FROM idempotency_keys WHERE key = ?")
      .bind(key)
      .all<{ body: string | null }>();
    expect(results).toHaveLength(1);
    return results.map((r) => r.body ?? "");
  };

  it.each([
    [
      "a partner key",
      (t: Awaited<ReturnType<typeof tenant>>) => [`/v1/partners/${t.partnerId}/api-keys`, t.operator],
    ],
    [
      "a customer's key",
      (t: Awaited<ReturnType<typeof tenant>>) => [`/v1/customers/${t.customers[0]}/api-keys`, t.partnerKey],
    ],
    [
      "a user token",
      (t: Awaited<ReturnType<typeof tenant>>) => [`/v1/customers/${t.customers[0]}/tokens`, t.partnerKey],
    ],
  ])(
    "is never kept (%s): the retry issues a new secret under the same id, the lost one stops working",
    async (_, route) => {
      const t = await tenant({ customers: 1 });
      const [path, token] = route(t) as [string, string];
      const key = unique("secret");
      const issue = () => call("POST", path, { token, body: {}, headers: { "idempotency-key": key } });
      const first = await expectOk(issue(), 201);
      expect((await storedBodies(key)).join("")).not.toContain(parseToken(first.token)?.secret);
      const again = await expectOk(issue(), 201);
      expect(again.id).toBe(first.id);
      expect(again.token).not.toBe(first.token);
      expect((await storedBodies(key)).join("")).not.toContain(parseToken(again.token)?.secret);
      const path2 = path.includes("/tokens") ? "/account/v1.0/quotas" : "/v1/subscriptions/";
      const tokenHeader = (tk: string): Record<string, string> =>
        path.includes("/tokens") ? { "x-auth-token": tk } : { "x-api-key": tk };
      expect((await call("GET", path2, { headers: tokenHeader(first.token) })).status).toBe(401);
      expect((await call("GET", path2, { headers: tokenHeader(again.token) })).status).toBe(200);
    },
  );

  it("once its credential is revoked, answers 409 and issues nothing", async () => {
    const t = await tenant({ customers: 1 });
    const key = unique("secret");
    const issue = () =>
      call("POST", `/v1/customers/${t.customers[0]}/api-keys`, {
        token: t.partnerKey,
        body: {},
        headers: { "idempotency-key": key },
      });
    const first = await expectOk(issue(), 201);
    await expectOk(call("DELETE", `/v1/credentials/${first.id}`, { token: t.partnerKey }));
    const again = await issue();
    expect(again.status, again.text).toBe(409);
    expect((await call("GET", "/v1/subscriptions/", { headers: { "x-api-key": first.token } })).status).toBe(
      401,
    );
  });

  it("keeps its key: a different request with it answers 422 (PUT /v1/products/{id})", async () => {
    const t = await tenant({ customers: 0 });
    const key = unique("key");
    const [a, b] = [unique("p").toLowerCase(), unique("p").toLowerCase()];
    await expectOk(
      call("PUT", "/v1/resources/stratus.keptkey", {
        token: t.operator,
        body: { service: "stratus", unit: "GB" },
      }),
    );
    const put = (id: string, price: string) =>
      call("PUT", `/v1/products/${id}`, {
        token: t.operator,
        headers: { "idempotency-key": key },
        body: {
          name: id,
          kind: "timed",
          unit: "GB",
          unit_price: price,
          currency: "EUR",
          quota_resource: "stratus.keptkey",
        },
      });
    expect((await put(a, "0.01")).status).toBe(200);
    // Before, the 200 gave the key back (its row deleted): this other request ran under it.
    const other = await put(b, "0.02");
    const created = await call("GET", `/v1/products/${b}`, { token: t.operator });
    expect({ status: other.status, productB: created.status }).toEqual({ status: 422, productB: 404 });
    // The same request again still runs again.
    expect((await put(a, "0.01")).status).toBe(200);
  });
});

describe("an Idempotency-Key's request, read as the API reads its path", () => {
  const sha256 = async (text: string) =>
    [...new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)))]
      .map((b) => b.toString(16).padStart(2, "0"))
      .join("");

  async function bought() {
    const t = await tenantWithCatalog(1, 100);
    const r = await expectOk(
      call("POST", "/v1/subscriptions/", {
        token: t.partnerKey,
        body: { objects: [{ customer: t.customers[0], resource: "mem", amount: 1, period: "1 month" }] },
      }),
      201,
    );
    return { t, id: r.objects[0].id as string };
  }

  it("replays a retry that drops the trailing slash or spells the id in upper case", async () => {
    const { t, id } = await bought();
    const key = unique("path");
    const raw = JSON.stringify({ auto_renew: true });
    const first = await call("PATCH", `/v1/subscriptions/${id}/`, {
      token: t.partnerKey,
      raw,
      headers: { "idempotency-key": key },
    });
    expect(first.status).toBe(200);
    for (const path of [`/v1/subscriptions/${id}`, `/v1/subscriptions/${id.toUpperCase()}/`]) {
      const again = await call("PATCH", path, {
        token: t.partnerKey,
        raw,
        headers: { "idempotency-key": key },
      });
      expect(again.status, path).toBe(200);
      expect(again.headers.get("idempotent-replayed"), path).toBe("true");
      expect(again.text, path).toBe(first.text);
    }
    const other = await call("PATCH", `/v1/subscriptions/${id}`, {
      token: t.partnerKey,
      raw: JSON.stringify({ auto_renew: false }),
      headers: { "idempotency-key": key },
    });
    expect(other.status).toBe(422);
  });

  it("replays a key kept with its path as it was sent, before paths were read so", async () => {
    const { t, id } = await bought();
    const key = unique("kept");
    const raw = JSON.stringify({ auto_renew: true });
    const path = `/v1/subscriptions/${id.toUpperCase()}/`;
    const first = await call("PATCH", path, {
      token: t.partnerKey,
      raw,
      headers: { "idempotency-key": key },
    });
    expect(first.status).toBe(200);
    await database(env)
      .update(idempotencyKeys)
      .set({ fingerprint: await sha256(`PATCH\n${path}\n${raw}`) })
      .where(keyRow(t, key))
      .run();
    const again = await call("PATCH", path, {
      token: t.partnerKey,
      raw,
      headers: { "idempotency-key": key },
    });
    expect(again.status).toBe(200);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
  });
});
