import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { HORIZON_MS } from "../../src/cron/renewals";
import { claimQuery } from "../../src/db/due-terms";
import { wronglyFollowed } from "../books";
import { buyOne, call, deliverRenewals, dueBy, expectOk, type Tenant, tenantWithCatalog } from "../helpers";

/**
 * A renewed term is never ended: its renewal follows it. In the cron's index of due terms, every
 * renewed term ever would sit with an end time in the past, and each run's first page would read
 * them all (a million subscriptions renewing monthly: twelve million rows a year, every five
 * minutes, until the statement passes D1's time limit and nothing renews or expires any more).
 * The index holds only terms that can be due, so what a run reads does not grow with the history.
 */

const CHAINS = 20;
const noon = (y: number, month: number, day: number) => new Date(Date.UTC(y, month - 1, day, 12));
const y = new Date().getUTCFullYear() + 7;

/** The chains' last terms: not ended, nothing after them. */
async function tails(roots: readonly string[]): Promise<Array<{ id: string; end_time: string }>> {
  const rows = await env.DB.prepare(
    `SELECT id, end_time FROM subscriptions
      WHERE root_id IN (SELECT value FROM json_each(?)) AND ended_at IS NULL AND next_id IS NULL`,
  )
    .bind(JSON.stringify(roots))
    .all<{ id: string; end_time: string }>();
  return rows.results;
}

/** Renews every chain's last term once, through the renewals consumer, a minute before it ends. */
async function renewAll(roots: readonly string[]): Promise<void> {
  const last = await tails(roots);
  expect(last).toHaveLength(roots.length);
  const acks = await deliverRenewals(
    last.map((t) => ({ subscription: t.id, at: new Date(Date.parse(t.end_time) - 60_000).toISOString() })),
  );
  expect(acks.explicitAcks).toHaveLength(roots.length);
}

/** The rows D1 reads for the first page of a cron run at `at`, as the run claims it; and the page. */
async function firstPage(at: Date): Promise<{ rowsRead: number; due: string[] }> {
  const before = new Date(at.getTime() + HORIZON_MS);
  // Marked as `dueBy` marks it: the claim's bound in the past, so the terms stay due.
  const { sql, params } = claimQuery(env, before, at, new Date(0), null, 500).toSQL();
  const result = await env.DB.prepare(sql)
    .bind(...params)
    .all<{ id: string }>();
  return { rowsRead: result.meta.rows_read, due: result.results.map((r) => r.id).sort() };
}

async function buyChains(t: Tenant): Promise<string[]> {
  const roots: string[] = [];
  for (let i = 0; i < CHAINS; i++) {
    const sub = await buyOne(t, {
      resource: "cpu",
      amount: 1,
      start_time: noon(y, 1, 1).toISOString(),
      period: "1 day",
      auto_renew: true,
    });
    roots.push(sub.id);
  }
  return roots;
}

describe("the cron's scan for due terms", () => {
  it("reads as many rows after 200 renewals as after 40: renewed terms are not in its index", async () => {
    const t = await tenantWithCatalog(1, CHAINS);
    const roots = await buyChains(t);
    const measure = async () => {
      const last = await tails(roots);
      // A run a minute before the last terms end: they are due, the renewed ones before them not.
      const at = new Date(Date.parse(last[0]?.end_time ?? "") - 60_000);
      const page = await firstPage(at);
      expect(page.due).toEqual(last.map((r) => r.id).sort());
      return page.rowsRead;
    };
    for (let round = 0; round < 2; round++) await renewAll(roots);
    const after40 = await measure();
    for (let round = 2; round < 10; round++) await renewAll(roots);
    const after200 = await measure();
    expect(after200).toBeLessThanOrEqual(after40);
    // A few reads for each of the 20 due terms (its index entry, its row, its mark), none for the
    // renewed ones (before they were left out: 200 and 520 rows, two for each renewed term).
    expect(after200).toBeLessThanOrEqual(6 * CHAINS);
    // The terms a run finds are as before: the chains' last ones, each once.
    const last = await tails(roots);
    const page = await dueBy(new Date(Date.parse(last[0]?.end_time ?? "")));
    expect(page.map((r) => r.id).sort()).toEqual(last.map((r) => r.id).sort());
  }, 180_000);

  it("is set for the terms a database already has by the migration that adds it, as the scan read them", async () => {
    const t = await tenantWithCatalog(1, 10);
    const start = noon(y + 1, 1, 1).toISOString();
    const buy = (autoRenew: boolean) =>
      buyOne(t, { resource: "cpu", amount: 1, start_time: start, period: "1 day", auto_renew: autoRenew });
    const renew = async (id: string, at: string) =>
      expect((await deliverRenewals([{ subscription: id, at }])).retryMessages).toEqual([]);
    const nextOf = async (id: string) =>
      (await expectOk(call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey }))).descendants[0];
    const minuteBefore = (end: string) => new Date(Date.parse(end) - 60_000).toISOString();
    // Renewed, its renewal live: followed.
    const renewed = await buy(true);
    await renew(renewed.id, minuteBefore(renewed.end_time));
    // Renewed, its renewal then expired (auto_renew turned off): followed, it ran its course.
    const ran = await buy(true);
    await renew(ran.id, minuteBefore(ran.end_time));
    const ranNext = await nextOf(ran.id);
    await expectOk(
      call("POST", `/v1/subscriptions/${ran.id}/action/?do=auto_renew`, {
        token: t.partnerKey,
        body: { auto_renew: false },
      }),
    );
    const ranNextEnd = (await expectOk(call("GET", `/v1/subscriptions/${ranNext}/`, { token: t.partnerKey })))
      .end_time;
    await renew(ranNext, new Date(Date.parse(ranNextEnd) + 60_000).toISOString());
    // Extended by hand, its extension then cancelled: not followed, it is due to expire.
    const cancelled = await buy(false);
    const extension = await expectOk(
      call("POST", `/v1/subscriptions/${cancelled.id}/action/?do=extend`, { token: t.partnerKey, body: {} }),
    );
    await expectOk(call("DELETE", `/v1/subscriptions/${extension.id}/`, { token: t.partnerKey }));
    const followed = async () => {
      const rows = await env.DB.prepare("SELECT id FROM subscriptions WHERE partner_id = ? AND followed = 1")
        .bind(t.partnerId)
        .all<{ id: string }>();
      return rows.results.map((r) => r.id).sort();
    };
    const expected = [renewed.id, ran.id].sort();
    expect(await followed()).toEqual(expected);
    expect(await wronglyFollowed(t.partnerId)).toEqual([]);
    const runAt = noon(y + 1, 1, 9);
    const due = (await dueBy(runAt)).map((d) => d.id).sort();
    expect(due).toContain(cancelled.id);
    expect(due).not.toContain(renewed.id);
    expect(due).not.toContain(ran.id);

    // As the migration finds them: the column added, 0 on every row; then its backfill.
    await env.DB.prepare("UPDATE subscriptions SET followed = 0 WHERE partner_id = ?")
      .bind(t.partnerId)
      .run();
    expect((await wronglyFollowed(t.partnerId)).sort()).toEqual(expected);
    // Rows the code before it wrote between the migration and the deploy are as these: the scan
    // still finds no more than it did.
    expect((await dueBy(runAt)).map((d) => d.id).sort()).toEqual(due);
    const migration = env.TEST_MIGRATIONS.find((m) => m.name.startsWith("0021_due_followed"));
    const backfill = migration?.queries.filter((q) => q.includes("UPDATE `subscriptions`")) ?? [];
    expect(backfill).toHaveLength(1);
    for (const q of backfill) await env.DB.prepare(q).run();
    expect(await followed()).toEqual(expected);
    expect(await wronglyFollowed(t.partnerId)).toEqual([]);
  });
});
