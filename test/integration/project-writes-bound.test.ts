import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { call, d1Answers, expectOk, tenant } from "../helpers";

/**
 * A project with many members: a change of a limit or a member's removal reads the project, not
 * every member of it. Each of these writes read the whole member list, a row per member, which
 * only the project's reads and a join answer (review of scale edges, 2026-12-04).
 */

const MEMBERS = 300;

/** D1 noting the most rows one statement answered. */
function rowsCounted(db: D1Database) {
  const seen = { most: 0 };
  const counted = d1Answers(db, (rows) => {
    seen.most = Math.max(seen.most, rows.length);
  });
  return { db: counted, seen };
}

describe("a project of many members", () => {
  it("sets limits and removes a member reading no member list, and still lists them all", async () => {
    const t = await tenant({ customers: 1, limit: 10 });
    const [member] = t.customers as [string];
    const [resource] = t.resources as [string];
    await expectOk(
      call("PATCH", `/v1/partners/${t.partnerId}`, { token: t.operator, body: { rate_limit: "unlimited" } }),
    );
    const p = await expectOk(
      call("POST", "/v1/projects", { token: t.partnerKey, body: { name: "big" } }),
      201,
    );
    // The other members straight into D1: only their rows are read by the requests below.
    const others = Array.from({ length: MEMBERS }, () => crypto.randomUUID()).sort();
    await env.DB.batch(
      others.flatMap((id) => [
        env.DB.prepare("INSERT INTO customers (id, partner_id, name) VALUES (?, ?, ?)").bind(
          id,
          t.partnerId,
          id,
        ),
        env.DB.prepare(
          "INSERT INTO project_members (project_id, customer_id, generation) VALUES (?, ?, ?)",
        ).bind(p.id, id, crypto.randomUUID()),
      ]),
    );
    const joined = await expectOk(
      call("POST", `/v1/projects/${p.id}/members`, { token: t.partnerKey, body: { customer: member } }),
    );
    expect(joined.members).toHaveLength(MEMBERS + 1);

    const writes: Array<[string, string, unknown]> = [
      ["PUT", `/v1/projects/${p.id}/quotas`, { resource, limit: 50 }],
      ["PUT", `/v1/projects/${p.id}/members/${member}/quotas`, { resource, limit: 5 }],
      ["DELETE", `/v1/projects/${p.id}/members/${member}`, undefined],
    ];
    for (const [method, path, body] of writes) {
      const counted = rowsCounted(env.DB);
      const reply = await call(method, path, {
        token: t.partnerKey,
        ...(body === undefined ? {} : { body }),
        env: Object.create(env, { DB: { value: counted.db } }) as Env,
      });
      expect(reply.status, reply.text).toBeLessThan(300);
      expect(counted.seen.most, `${method} ${path}`).toBeLessThan(MEMBERS);
    }
    const read = await expectOk(call("GET", `/v1/projects/${p.id}`, { token: t.partnerKey }));
    expect(read.members).toEqual(others);
  }, 120_000);
});
