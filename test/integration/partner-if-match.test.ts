import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { findPartner, updatePartner } from "../../src/db/partners";
import { call, operatorToken, tenant } from "../helpers";

/**
 * `GET /v1/partners/{id}` answers a strong ETag, so a `PATCH` with `If-Match` must honour it: two
 * operators changing a partner's tier at once must not lose one change silently (RFC 9110 §13.1.1).
 */

describe("If-Match on PATCH /v1/partners/{id}", () => {
  it("refuses a stale, weak or bogus tag with 412 and changes nothing; a current one updates", async () => {
    const t = await tenant({ customers: 0 });
    const operator = await operatorToken();
    const path = `/v1/partners/${t.partnerId}`;
    const read = await call("GET", path, { token: operator });
    const etag = read.headers.get("etag")!;
    const raised = await call("PATCH", path, {
      token: operator,
      body: { rate_limit: "raised" },
      headers: { "if-match": `"other", ${etag}` },
    });
    expect(raised.status, raised.text).toBe(200);
    expect(raised.body.rate_limit).toBe("raised");
    expect(raised.headers.get("etag")).toBe(
      (await call("GET", path, { token: operator })).headers.get("etag"),
    );
    for (const stale of [etag, `W/${raised.headers.get("etag")}`, '"bogus"']) {
      const lost = await call("PATCH", path, {
        token: operator,
        body: { rate_limit: "unlimited" },
        headers: { "if-match": stale },
      });
      expect(lost.status, `${stale}: ${lost.text}`).toBe(412);
      expect(lost.body.type).toBe("https://stratus.dev/problems/precondition-failed");
    }
    expect((await call("GET", path, { token: operator })).body.rate_limit).toBe("raised");
    const star = await call("PATCH", path, {
      token: operator,
      body: { name: "Starred" },
      headers: { "if-match": "*" },
    });
    expect(star.status, star.text).toBe(200);
    const missing = await call("PATCH", "/v1/partners/00000000-0000-7000-8000-000000000000", {
      token: operator,
      body: { name: "x" },
      headers: { "if-match": "*" },
    });
    expect(missing.status).toBe(404);
  });

  it("makes the comparison part of the update: a change in between answers 412", async () => {
    const t = await tenant({ customers: 0 });
    const compared = (await findPartner(env, t.partnerId))!;
    expect(await updatePartner(env, t.partnerId, { rateLimit: "raised" }, compared)).toMatchObject({
      rateLimit: "raised",
    });
    expect(await updatePartner(env, t.partnerId, { rateLimit: "unlimited" }, compared)).toBeUndefined();
    expect((await findPartner(env, t.partnerId))!.rateLimit).toBe("raised");
  });
});
