import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { call, d1Answers, expectOk, tenantWithCatalog } from "../helpers";
import { buyFor } from "../legacy";

/**
 * A cloud's record holds its run history of the month, up to MAX_RUN_INTERVALS (5,000, some
 * 300 KB), and its projection in D1 holds the record. A list page read every record whole: 500
 * such clouds were over 100 MB of bodies in one invocation, past the 128 MB a Worker may hold,
 * to show of each history only whether its last interval is open (`run_state`). The page reads the
 * last interval only (review of scale edges, 2026-12-04).
 */

const INTERVALS = 3000;

/** D1 noting the longest text any statement answered. */
function textCounted(db: D1Database) {
  const seen = { longest: 0 };
  const counted = d1Answers(db, (rows) => {
    for (const row of rows)
      for (const value of row)
        if (typeof value === "string") seen.longest = Math.max(seen.longest, value.length);
  });
  return { db: counted, seen };
}

/** Gives cloud `id`'s projection a history of `INTERVALS` closed intervals, then `open`'s last one if any. */
async function longHistory(id: string, open: boolean) {
  await env.DB.prepare(
    `UPDATE subscriptions SET body = json_set(body, '$.runs', (
       WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?2)
       SELECT json_group_array(json_object('start', i * 1000, 'end', i * 1000 + 500, 'quantity', 1)) FROM n))
     WHERE id = ?1`,
  )
    .bind(id, INTERVALS)
    .run();
  if (open)
    await env.DB.prepare(
      `UPDATE subscriptions SET body = json_insert(body, '$.runs[#]', json_object('start', ?2, 'end', NULL, 'quantity', 1))
       WHERE id = ?1`,
    )
      .bind(id, (INTERVALS + 1) * 1000)
      .run();
}

describe("a list of clouds with long run histories", () => {
  it("reads a bounded record of each, and still shows which runs", async () => {
    const t = await tenantWithCatalog(1, 10);
    const running = await buyFor(t, "cumulus");
    const stopped = await buyFor(t, "cumulus");
    await longHistory(running, true);
    await longHistory(stopped, false);

    const counted = textCounted(env.DB);
    const page = await expectOk(
      call("GET", "/v1/subscriptions/?resource=cumulus", {
        token: t.partnerKey,
        env: Object.create(env, { DB: { value: counted.db } }) as Env,
      }),
    );
    const state = Object.fromEntries(
      (page.objects as Array<{ id: string; run_state: string }>).map((o) => [o.id, o.run_state]),
    );
    expect(state).toEqual({ [running]: "running", [stopped]: "stopped" });
    // A record with one interval is some 1.5 KB; the history alone was over 150 KB.
    expect(counted.seen.longest).toBeLessThan(10_000);
  });
});
