import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { call, tenant } from "../helpers";

/**
 * Requests shaped as CloudSigma's own client library (pycloudsigma) sends them: HTTP Basic with
 * the account's username and password, where the password is a stratus API key.
 */

const basic = (user: string, password: string) => ({ authorization: `Basic ${btoa(`${user}:${password}`)}` });

const credentialCount = async () =>
  (await env.DB.prepare("SELECT count(*) AS n FROM credentials").first<{ n: number }>())?.n;

describe("HTTP Basic on /v1", () => {
  it("takes the API key as the password, whatever the username", async () => {
    const t = await tenant({ customers: 1 });
    const keyId = t.partnerKey.split(".")[1] as string;
    for (const user of [keyId, "someone@example.com", ""]) {
      const r = await call("GET", "/v1/customers", { headers: basic(user, t.partnerKey) });
      expect(r.status, r.text).toBe(200);
      expect(r.body.objects.map((c: { id: string }) => c.id)).toEqual(t.customers);
    }
  });

  it("answers 401 problem+json naming every scheme to a wrong or malformed Basic header, writing nothing", async () => {
    const t = await tenant({ customers: 1 });
    const before = await credentialCount();
    const headers = [
      basic("user", `${t.partnerKey}x`),
      basic("user", "not-a-key"),
      { authorization: "Basic %%%not base64%%%" },
      { authorization: `Basic ${btoa(t.partnerKey)}` },
      { authorization: "Basic " },
    ];
    for (const h of headers) {
      const r = await call("POST", `/v1/customers/${t.customers[0]}/tokens`, { headers: h, body: {} });
      expect(r.status, h.authorization).toBe(401);
      expect(r.headers.get("content-type")).toMatch(/^application\/problem\+json/);
      expect(r.body.status).toBe(401);
      expect(r.headers.get("www-authenticate")).toBe(
        'ApiKey header="X-Api-Key", Bearer, Basic realm="stratus"',
      );
    }
    expect(await credentialCount()).toBe(before);
  });

  it("is declared in the OpenAPI document", async () => {
    const doc = (await call("GET", "/openapi.json")).body;
    expect(doc.components.securitySchemes.basic).toMatchObject({ type: "http", scheme: "basic" });
    expect(doc.paths["/v1/subscriptions"].get.security).toContainEqual({ basic: [] });
  });
});
