import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { uuidv7 } from "../../src/domain/ids";
import { MAX_LISTED_DESCENDANTS } from "../../src/domain/subscriptions";
import { call, chainOf, d1Answers, expectOk, tenantWithCatalog } from "../helpers";

/**
 * A plain list page of a long chain's terms: each row named the rest of the chain in `descendants`,
 * so 50 terms of a 1,500-term chain were 2.9 MB, and the page read the whole chain from D1 (1,551
 * rows), copying it once per term on the way (review of scale edges, 2026-12-05). A plain row names
 * at most `MAX_LISTED_DESCENDANTS` terms after it, from the chain read once; a grouped row and a
 * single read still name them all. The chain is seeded straight into the read model, which is all
 * a list reads.
 */

const TERMS = 1500;

/** Clones extension `template`'s row as terms after it until the chain has `TERMS` terms: their ids. */
async function seedChain(template: string): Promise<string[]> {
  let previous = template;
  const ids: string[] = [];
  const statements: D1PreparedStatement[] = [];
  for (let i = 2; i < TERMS; i++) {
    const id = uuidv7();
    ids.push(id);
    const start = new Date(Date.UTC(2030, 0, 1) + i * 86_400_000).toISOString();
    const end = new Date(Date.UTC(2030, 0, 1) + (i + 1) * 86_400_000).toISOString();
    statements.push(
      env.DB.prepare(
        `INSERT INTO subscriptions (id, partner_id, customer_id, product, kind, amount, start_time, end_time,
           auto_renew, ended_at, root_id, previous_id, next_id, order_id, body, version, followed)
         SELECT ?1, partner_id, customer_id, product, kind, amount, ?2, ?3, auto_renew, ended_at, root_id, ?4,
           NULL, order_id, json_set(body, '$.id', ?1, '$.startTime', ?2, '$.endTime', ?3, '$.previousId', ?4,
           '$.nextId', NULL), version, 0
         FROM subscriptions WHERE id = ?5`,
      ).bind(id, start, end, previous, template),
      env.DB.prepare(
        "UPDATE subscriptions SET next_id = ?2, body = json_set(body, '$.nextId', ?2) WHERE id = ?1",
      ).bind(previous, id),
    );
    previous = id;
  }
  for (let i = 0; i < statements.length; i += 200) await env.DB.batch(statements.slice(i, i + 200));
  return ids;
}

describe("a list page of a long chain's terms", () => {
  it("is bounded in bytes and in D1 rows read, its descendants the first of the chain after each row", async () => {
    const t = await tenantWithCatalog(1, 10);
    const [first, extension] = (await chainOf(t, { resource: "cpu", amount: 1, period: "1 day" }, 2)) as [
      string,
      string,
    ];
    const chain = [first, extension, ...(await seedChain(extension))];

    const read = async (path: string) => {
      let rowsRead = 0;
      const db = d1Answers(env.DB, (rows) => {
        rowsRead += rows.length;
      });
      const page = await call("GET", path, { token: t.partnerKey, env: { ...env, DB: db } });
      expect(page.status, page.text.slice(0, 200)).toBe(200);
      console.info(path, "bytes:", page.text.length, "D1 rows read:", rowsRead);
      return { page: page.body, bytes: page.text.length, rowsRead };
    };

    // A plain page of 50 of its terms: each names at most the next MAX_LISTED_DESCENDANTS.
    const plain = await read("/v1/subscriptions/?limit=50");
    expect(plain.page.objects).toHaveLength(50);
    expect(plain.bytes).toBeLessThan(50 * 5_000);
    // The page's rows and the chain, each read once.
    expect(plain.rowsRead).toBeLessThanOrEqual(51 + TERMS);
    plain.page.objects.forEach((row: { id: string; descendants: string[] }, n: number) => {
      expect(row.id).toBe(chain[n]);
      expect(row.descendants).toEqual(chain.slice(n + 1, n + 1 + MAX_LISTED_DESCENDANTS));
    });
    // The chain's last terms name what follows them, to the chain's end.
    const tail = await read(`/v1/subscriptions/?limit=50&offset=${TERMS - 3}`);
    expect(tail.page.objects.map((o: { descendants: string[] }) => o.descendants.length)).toEqual([2, 1, 0]);

    // Rows of the chain far apart on one page (terms 10 to 199 ended, passed over by the filter):
    // each still names the next terms of the chain, ended ones among them.
    await env.DB.prepare(
      `UPDATE subscriptions SET ended_at = ?2, body = json_set(body, '$.endedAt', ?2)
       WHERE id IN (SELECT value FROM json_each(?1))`,
    )
      .bind(JSON.stringify(chain.slice(10, 200)), new Date().toISOString())
      .run();
    const apart = await read("/v1/subscriptions/?limit=50&status=inactive");
    const positions = apart.page.objects.map((o: { id: string }) => chain.indexOf(o.id));
    expect(positions.slice(positions.indexOf(9), positions.indexOf(9) + 3)).toEqual([9, 200, 201]);
    apart.page.objects.forEach((row: { descendants: string[] }, n: number) => {
      const at = positions[n] as number;
      expect(row.descendants).toEqual(chain.slice(at + 1, at + 1 + MAX_LISTED_DESCENDANTS));
    });

    // Grouped, the chain's first names every extension, as the spec has it.
    const grouped = await read("/v1/groupedsubscriptions/?limit=50");
    expect(grouped.page.objects[0].descendants).toEqual(chain.slice(1));
    const root = await expectOk(call("GET", `/v1/subscriptions/${first}/`, { token: t.partnerKey }));
    expect(root.descendants).toHaveLength(TERMS - 1);
  }, 300_000);

  it("answers a page of many extended chains, each row naming the terms after it", async () => {
    // A page of more chains than SQLite lets one compound SELECT name (workerd allows 5) answered
    // 500 when each chain's window was a term of one UNION ALL (blackbox review, 2026-12-05).
    const t = await tenantWithCatalog(1, 20);
    const chains: string[][] = [];
    for (let i = 0; i < 8; i++)
      chains.push(await chainOf(t, { resource: "cpu", amount: 1, period: "1 day" }, 2));
    const page = await expectOk(call("GET", "/v1/subscriptions/?limit=50", { token: t.partnerKey }));
    const named = new Map(
      page.objects.map((o: { id: string; descendants: string[] }) => [o.id, o.descendants]),
    );
    expect(named.size).toBe(16);
    for (const [first, ext] of chains) {
      expect(named.get(first)).toEqual([ext]);
      expect(named.get(ext)).toEqual([]);
    }
  });
});
