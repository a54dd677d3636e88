import { describe, expect, it } from "vitest";
import { call, tenant } from "../helpers";

/**
 * The identity endpoint astakosclient starts from (Astakos `api/tokens.py`, read by
 * astakosclient's `_fill_endpoints`): the exact requests the client sends.
 */

const tokens = "/identity/v2.0/tokens";
const origin = "http://stratus.test";

/** `get_endpoints()`: POST, the client's token in X-Auth-Token, `content-type: application/json`, no body. */
const getEndpoints = (token?: string) =>
  call("POST", tokens, {
    headers: { "content-type": "application/json", ...(token ? { "x-auth-token": token } : {}) },
  });

/** `authenticate()`: the token in the body too. */
const authenticate = (token: string, extra: Record<string, unknown> = {}) =>
  call("POST", tokens, {
    headers: { "x-auth-token": token },
    body: { auth: { token: { id: token }, ...extra } },
  });

function accountEndpoint(body: any) {
  const entry = body.access.serviceCatalog.find((s: any) => s.name === "astakos_account");
  return entry.endpoints.find((e: any) => e.versionId === "v1.0");
}

describe("POST /identity/v2.0/tokens", () => {
  it("answers the catalog alone to a call without a token, as _fill_endpoints reads it", async () => {
    const r = await getEndpoints();
    expect(r.status).toBe(200);
    expect(r.body.access.token).toBeUndefined();
    expect(r.body.access.user).toBeUndefined();
    expect(r.body.access.serviceCatalog).toEqual([
      {
        name: "astakos_account",
        type: "account",
        endpoints: [
          {
            versionId: "v1.0",
            publicURL: `${origin}/account/v1.0`,
            "SNF:uiURL": `${origin}/docs`,
            region: "default",
          },
        ],
        endpoints_links: [],
      },
      {
        name: "astakos_identity",
        type: "identity",
        endpoints: [
          {
            versionId: "v2.0",
            publicURL: `${origin}/identity/v2.0`,
            "SNF:uiURL": `${origin}/docs`,
            region: "default",
          },
        ],
        endpoints_links: [],
      },
    ]);
  });

  it("answers a service token's access document, by header (empty body) or by body", async () => {
    const t = await tenant({ customers: 0 });
    for (const r of [await getEndpoints(t.serviceToken), await authenticate(t.serviceToken)]) {
      expect(r.status).toBe(200);
      expect(r.body.access.token).toEqual({
        id: t.serviceToken,
        expires: null,
        tenant: { id: t.serviceId, name: t.serviceName },
      });
      expect(r.body.access.user).toEqual({
        id: t.serviceId,
        name: t.serviceName,
        roles: [{ id: "service", name: "service" }],
        roles_links: [],
        projects: [],
      });
      expect(accountEndpoint(r.body).publicURL).toBe(`${origin}/account/v1.0`);
    }
  });

  it("answers a user token's access document, with the customer as user and tenant", async () => {
    const t = await tenant({ customers: 1 });
    const r = await authenticate(t.userTokens[0]!, { tenantName: t.customers[0] });
    expect(r.status).toBe(200);
    expect(r.body.access.user).toMatchObject({ id: t.customers[0], name: "customer 0" });
    expect(r.body.access.token.tenant).toEqual({ id: t.customers[0], name: "customer 0" });
    expect(accountEndpoint(r.body)["SNF:uiURL"]).toBe(`${origin}/docs`);
    // Its projects, as newer Synnefo services read them: the base project, then those it joined.
    expect(r.body.access.user.projects).toEqual([t.customers[0]]);
    const p = await call("POST", "/v1/projects", { token: t.partnerKey, body: { name: "lab" } });
    await call("POST", `/v1/projects/${p.body.id}/members`, {
      token: t.partnerKey,
      body: { customer: t.customers[0] },
    });
    const joined = await authenticate(t.userTokens[0]!);
    expect(joined.body.access.user.projects).toEqual([t.customers[0], p.body.id]);
    // The publicURL really is the account API: the client's next call works there.
    const quotas = await call("GET", "/account/v1.0/quotas", { token: t.userTokens[0] });
    expect(quotas.status).toBe(200);
  });

  it("answers 401 in the cloudFault shape for an unknown, revoked-looking or non-Astakos token", async () => {
    const t = await tenant({ customers: 0 });
    for (const r of [
      await authenticate("svc.nope.nopenopenopenopenope"),
      await getEndpoints("usr.nope.nopenopenopenopenope"),
      await authenticate(t.partnerKey),
      await authenticate(t.operator),
      // No header could carry these as sent: no token of ours, not a 500.
      ...(await Promise.all(
        ["\u0000", `${t.serviceToken}\n`].map((id) =>
          call("POST", tokens, { body: { auth: { token: { id } } } }),
        ),
      )),
      await call("POST", tokens, { body: { auth: { passwordCredentials: { password: "a\r\nb" } } } }),
    ]) {
      expect(r.status).toBe(401);
      expect(r.body).toEqual({ unauthorized: { message: expect.any(String), code: 401 } });
    }
  });

  it("answers 400 badRequest for an auth without credentials or a foreign tenantName", async () => {
    const t = await tenant({ customers: 1 });
    const none = await call("POST", tokens, { body: { auth: {} } });
    expect(none.status).toBe(400);
    expect(none.body.badRequest.code).toBe(400);
    const foreign = await authenticate(t.userTokens[0]!, { tenantName: t.serviceId });
    expect(foreign.status).toBe(400);
    expect(foreign.body.badRequest.message).toBe("Not conforming tenantName");
    const malformed = await call("POST", tokens, { body: { auth: { token: { id: 5 } } } });
    expect(malformed.status).toBe(400);
  });
});
