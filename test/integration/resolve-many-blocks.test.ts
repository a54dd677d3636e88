import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { MAX_RESOLVE_SERIALS, serialIn } from "../../src/domain/commissions";
import { call, expectOk, tenant } from "../helpers";
import { limitedD1 } from "../limited-d1";

/**
 * Resolve-many looks up which ledger keeps each serial, by its block (`serial_blocks`): every
 * holder's ledger hands out serials from blocks of its own, so a service resolving the pending
 * commissions of a thousand users names a thousand blocks. Each was a D1 query of its own: with
 * the request's other queries, past the 1,000 one invocation may make (Workers Paid), and the
 * serials whose lookup D1 refused failed `serviceUnavailable`, on every such request. The blocks
 * are looked up a statement per hundred (review of scale edges, 2026-12-04).
 */

describe("resolve-many naming serials of many blocks", () => {
  it("looks up their ledgers within a few D1 queries, and answers each serial", async () => {
    const t = await tenant({ customers: 1, limit: 10 });
    const first = 50_000_000;
    // Blocks of ledgers that keep no such commission: each serial answers itemNotFound.
    await env.DB.prepare(
      `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?2 - 1)
       INSERT INTO serial_blocks (block, home) SELECT ?1 + i, 'scale-home-' || i FROM n`,
    )
      .bind(first, MAX_RESOLVE_SERIALS)
      .run();
    const serials = Array.from({ length: MAX_RESOLVE_SERIALS }, (_, i) => serialIn(first + i, 1));
    // The service is known to this isolate already: the request's own queries are few.
    await expectOk(call("GET", "/account/v1.0/commissions", { token: t.serviceToken }));

    const d1 = limitedD1(env.DB, 1000);
    const r = await expectOk(
      call("POST", "/account/v1.0/commissions/action", {
        token: t.serviceToken,
        env: { ...env, DB: d1.db },
        body: { accept: serials, reject: [] },
      }),
    );
    const kinds = new Set((r.failed as Array<[number, object]>).map(([, fault]) => Object.keys(fault)[0]));
    expect(d1.refused).toBe(0);
    expect(d1.used).toBeLessThanOrEqual(20);
    expect([...kinds]).toEqual(["itemNotFound"]);
    expect(r.failed).toHaveLength(MAX_RESOLVE_SERIALS);
  }, 120_000);
});
