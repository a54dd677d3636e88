import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { MAX_SERVICE_HOLDERS } from "../../src/domain/quota";
import { call, expectOk, tenant } from "../helpers";

/**
 * An unfiltered `service_quotas` or `service_project_quotas` reads one ledger per holder. Past
 * `MAX_SERVICE_HOLDERS` the invocation would run out of subrequests half-way and answer 500 (the
 * test runtime does not count them): it answers 400 `badRequest` first, reading none, and a
 * `?user=` (`?project=`) list still answers.
 */

describe("service quotas of a partner with more holders than one answer reads", () => {
  it("answers 400 badRequest unfiltered, reading no ledger; a ?user= list answers", async () => {
    const t = await tenant({ customers: 1, limit: 5 });
    const [mine] = t.customers as [string];
    // Ids of their own: another test's bulk customers must not collide.
    await env.DB.prepare(
      `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?2)
       INSERT INTO customers (id, partner_id, name) SELECT lower(hex(randomblob(16))), ?1, 'bulk ' || i FROM n`,
    )
      .bind(t.partnerId, MAX_SERVICE_HOLDERS)
      .run();
    for (const path of ["/account/v1.0/service_quotas", "/account/v1.0/service_project_quotas"]) {
      const r = await call("GET", path, { token: t.serviceToken });
      expect(r.status, r.text).toBe(400);
      expect(r.body.badRequest.message).toContain(`more than one answer reads (${MAX_SERVICE_HOLDERS})`);
    }
    const one = await expectOk(
      call("GET", `/account/v1.0/service_quotas?user=${mine}`, { token: t.serviceToken }),
    );
    expect(one[mine].system[t.resources[0] as string]).toEqual({ usage: 0, limit: 5, pending: 0 });
    const base = await expectOk(
      call("GET", `/account/v1.0/service_project_quotas?project=${mine}`, { token: t.serviceToken }),
    );
    expect(base[mine][t.resources[0] as string]).toEqual({
      project_limit: 5,
      project_usage: 0,
      project_pending: 0,
    });
  });
});
