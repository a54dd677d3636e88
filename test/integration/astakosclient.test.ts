import { describe, expect, it } from "vitest";
import { MAX_LISTED_HOLDERS } from "../../src/domain/quota";
import { call, expectOk, tenant } from "../helpers";

/**
 * What Synnefo's astakosclient sends (its code since the project format of Synnefo 0.15), request
 * for request: the paths, query strings and bodies its public methods build.
 */

const base = "/account/v1.0";

describe("service_get_quotas(user=[a, b])", () => {
  it("answers the listed users, as `?user=a,b` joins them", async () => {
    const t = await tenant({ customers: 3, limit: 4 });
    const [a, b, c] = t.customers as [string, string, string];
    const r = await expectOk(call("GET", `${base}/service_quotas?user=${a},${b}`, { token: t.serviceToken }));
    expect(Object.keys(r).sort()).toEqual([a, b].sort());
    expect(r[a].system[t.resources[0]!]).toMatchObject({ usage: 0, limit: 4, pending: 0 });
    expect(r[c]).toBeUndefined();
    // A repeat counts once; another partner's user is left out, as one alone is.
    const other = await tenant({ customers: 1 });
    const mixed = await expectOk(
      call("GET", `${base}/service_quotas?user=${a},${a},${other.customers[0]}`, { token: t.serviceToken }),
    );
    expect(Object.keys(mixed)).toEqual([a]);
  });

  it("answers 400 badRequest for a malformed member or past the bound", async () => {
    const t = await tenant({ customers: 1 });
    const [a] = t.customers as [string];
    for (const query of [`user=${a},nope`, `user=${a},`, "user="]) {
      const r = await call("GET", `${base}/service_quotas?${query}`, { token: t.serviceToken });
      expect(r.status).toBe(400);
      expect(r.body.badRequest.message).toContain("must be a UUID");
    }
    const many = Array.from({ length: MAX_LISTED_HOLDERS + 1 }, () => a).join(",");
    const r = await call("GET", `${base}/service_quotas?user=${many}`, { token: t.serviceToken });
    expect(r.status).toBe(400);
    expect(r.body.badRequest.message).toBe(`/user: at most ${MAX_LISTED_HOLDERS} values`);
    const bound = Array.from({ length: MAX_LISTED_HOLDERS }, () => a).join(",");
    expect(
      (await call("GET", `${base}/service_quotas?user=${bound}`, { token: t.serviceToken })).status,
    ).toBe(200);
  });
});
