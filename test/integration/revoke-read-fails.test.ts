import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { call, expectOk, tenant } from "../helpers";

/**
 * `DELETE /v1/credentials/{id}` revokes the row, then reads it back for its answer. A revocation
 * applies at once on the instance that took it (README, "Credentials"): also when D1 fails after
 * the revocation landed, before its answer. Before, the instance forgot the credential's row only
 * once the read back succeeded: the request answered 500, the revocation was in D1, and the key
 * kept authenticating on that very instance for up to 30 s from the row it kept.
 */

/** D1 whose reads of the credentials table fail once the revocation's UPDATE ran. */
function readBackFails(db: D1Database): D1Database {
  let revoked = false;
  const wrap = <T extends D1Database | D1DatabaseSession>(target: T): T =>
    new Proxy(target, {
      get(t, key) {
        if (key === "prepare")
          return (sql: string) => {
            if (/^update "credentials"/i.test(sql)) revoked = true;
            else if (revoked && /^select .* from "credentials"/i.test(sql)) throw new Error("D1 is down");
            return t.prepare(sql);
          };
        if (key === "withSession") return (start?: string) => wrap((t as D1Database).withSession(start));
        const value = Reflect.get(t, key);
        return typeof value === "function" ? value.bind(t) : value;
      },
    });
  return wrap(db);
}

describe("a revocation whose read back fails", () => {
  it("still applies at once on the instance that took it", async () => {
    const t = await tenant({ customers: 0 });
    const key = await expectOk(
      call("POST", `/v1/partners/${t.partnerId}/api-keys`, { token: t.operator, body: {} }),
      201,
    );
    // The instance keeps the key's row: it authenticated a request a moment ago.
    expect((await call("GET", "/v1/customers", { token: key.token })).status).toBe(200);
    const revoke = await call("DELETE", `/v1/credentials/${key.id}`, {
      token: t.partnerKey,
      env: Object.create(env, { DB: { value: readBackFails(env.DB) } }) as Env,
    });
    expect(revoke.status).toBe(500);
    const row = await env.DB.prepare("SELECT revoked_at FROM credentials WHERE id = ?")
      .bind(key.id)
      .first<{ revoked_at: string | null }>();
    expect(row?.revoked_at).not.toBeNull();
    expect((await call("GET", "/v1/customers", { token: key.token })).status).toBe(401);
    // The retry answers the revocation.
    const again = await call("DELETE", `/v1/credentials/${key.id}`, { token: t.partnerKey });
    expect(again.status).toBe(200);
    expect(again.body.revoked_at).toBe(row?.revoked_at);
  });
});
