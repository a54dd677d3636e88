import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { call, expectOk, replicaReading, tenant } from "../helpers";

/**
 * A credential's row as authentication reads it (README, "Credentials"): from the primary, never
 * a replica a write behind; read again when it does not know the secret presented (issued anew);
 * and asked again before each page of a list streamed after its request was admitted.
 */

describe("the credential row authentication reads", () => {
  it("comes from the primary, in a session of its own, never the request's, which may be a replica", async () => {
    const t = await tenant({ customers: 0 });
    const key = await expectOk(
      call("POST", `/v1/partners/${t.partnerId}/api-keys`, { token: t.operator, body: {} }),
      201,
    );
    const seen: Array<{ via: string; sql: string }> = [];
    const watch = <T extends D1Database | D1DatabaseSession>(target: T, via: string): T =>
      new Proxy(target, {
        get(own, name) {
          if (name === "prepare")
            return (sql: string) => {
              seen.push({ via, sql });
              return own.prepare(sql);
            };
          if (name === "withSession")
            return (start?: string) => watch((own as D1Database).withSession(start), start ?? "session");
          const value = Reflect.get(own, name);
          return typeof value === "function" ? value.bind(own) : value;
        },
      });
    const watched = Object.create(env, { DB: { value: watch(env.DB, "primary") } }) as Env;
    const r = await call("GET", "/v1/customers", { token: key.token, env: watched });
    expect(r.status, r.text).toBe(200);
    const reads = seen.filter((s) => /from "credentials"/i.test(s.sql));
    expect(reads.length).toBeGreaterThan(0);
    expect(reads.map((s) => s.via)).toEqual(reads.map(() => "first-primary"));
  });

  it("so a revocation applies at once on the instance that took it, whatever a replica says", async () => {
    const t = await tenant({ customers: 0 });
    const key = await expectOk(
      call("POST", `/v1/partners/${t.partnerId}/api-keys`, { token: t.operator, body: {} }),
      201,
    );
    // A replica that has not applied the revocation yet: it reads the row as it was before it.
    const lagging = replicaReading((sql) => sql.replace(/"credentials"\."revoked_at"/g, "NULL"));

    await expectOk(call("DELETE", `/v1/credentials/${key.id}`, { token: t.partnerKey }));
    const first = await call("GET", "/v1/customers", { token: key.token, env: lagging });
    // Then the primary itself says revoked: on this instance, the key still works.
    const next = await call("GET", "/v1/customers", { token: key.token });
    expect([first.status, next.status]).toEqual([401, 401]);
  });
});

describe("a limit=0 stream of a credential revoked while it is read", () => {
  it("is cut short: no page is read after the revocation", async () => {
    const t = await tenant({ customers: 0 });
    // A second key of the partner: the one the stream runs on, revoked while it is read.
    const key = await expectOk(
      call("POST", `/v1/partners/${t.partnerId}/api-keys`, { token: t.operator, body: {} }),
      201,
    );
    for (let i = 0; i < 501; i++) {
      await expectOk(call("POST", "/v1/customers", { token: t.partnerKey, body: { name: `c${i}` } }), 201);
    }
    const read = async (token: string, revokeAfterFirst: boolean) => {
      const res = await exports.default.fetch("http://stratus.test/v1/customers?limit=0", {
        headers: { "x-api-key": token, "cf-connecting-ip": "2001:db8::5151" },
      });
      expect(res.status).toBe(200);
      const reader = (res.body as ReadableStream<Uint8Array>).getReader();
      const decoder = new TextDecoder();
      let text = decoder.decode((await reader.read()).value);
      if (revokeAfterFirst)
        await expectOk(call("DELETE", `/v1/credentials/${key.id}`, { token: t.partnerKey }));
      for (let r = await reader.read(); !r.done; r = await reader.read()) text += decoder.decode(r.value);
      return JSON.parse(text) as { objects: unknown[] };
    };
    // The control: read whole while the key stands.
    expect((await read(key.token, false)).objects).toHaveLength(501);
    await expect(read(key.token, true)).rejects.toThrow();
    expect((await call("GET", "/v1/customers", { token: key.token })).status).toBe(401);
  });
});

describe("a key issued again under its Idempotency-Key", () => {
  it("stops the secret it replaces at once on this instance", async () => {
    const t = await tenant({ customers: 1 });
    const issue = () =>
      call("POST", `/v1/customers/${t.customers[0]}/api-keys`, {
        token: t.partnerKey,
        body: {},
        headers: { "idempotency-key": "reissue-1" },
      });
    const first = await expectOk(issue(), 201);
    // Used once: this instance now keeps its row and the secret it verified.
    expect((await call("GET", "/v1/orders", { token: first.token })).status).toBe(200);
    const second = await expectOk(issue(), 201);
    expect(second.id).toBe(first.id);
    expect(second.token).not.toBe(first.token);
    // The secret answered now works, and the one it replaced does not.
    const now = (await call("GET", "/v1/orders", { token: second.token })).status;
    const replaced = (await call("GET", "/v1/orders", { token: first.token })).status;
    expect({ now, replaced }).toEqual({ now: 200, replaced: 401 });
  });

  it("stops the secret it replaces at once on this instance, even before the new one is presented", async () => {
    const t = await tenant({ customers: 1 });
    const issue = () =>
      call("POST", `/v1/customers/${t.customers[0]}/api-keys`, {
        token: t.partnerKey,
        body: {},
        headers: { "idempotency-key": "reissue-2" },
      });
    const first = await expectOk(issue(), 201);
    // Used once: this instance keeps its row and the secret it verified.
    expect((await call("GET", "/v1/orders", { token: first.token })).status).toBe(200);
    const second = await expectOk(issue(), 201);
    expect(second.id).toBe(first.id);
    // The lost secret first: the kept row must not let it in for its remaining 30 s.
    const replaced = (await call("GET", "/v1/orders", { token: first.token })).status;
    const now = (await call("GET", "/v1/orders", { token: second.token })).status;
    expect({ replaced, now }).toEqual({ replaced: 401, now: 200 });
  });
});
