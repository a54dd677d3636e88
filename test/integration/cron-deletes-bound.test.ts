import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { DELETES_PER_RUN, ROWS_PER_DELETE } from "../../src/db/client";
import { deleteExpiredConsumptionQueues } from "../../src/db/consumption-queues";
import { deleteExpiredOperations } from "../../src/db/operations";
import { limitedD1 } from "../limited-d1";

/**
 * The cron forgets finished operations past their retention and consumption reports' queues past
 * their memory, each with one DELETE of every expired row. After a backlog (the cron failing a
 * while, a first run over a month of rows) that one statement deletes hundreds of thousands of
 * rows, past what D1 lets one query run (30 s): it fails, every run, and the backlog only grows.
 * Now a run deletes them `ROWS_PER_DELETE` rows a statement, `DELETES_PER_RUN` statements at most;
 * the rest go in the next runs.
 */

const EXPIRED = ROWS_PER_DELETE * DELETES_PER_RUN + 2_500;
const PAST = "2000-01-01T00:00:00.000Z";
const FUTURE = "2999-01-01T00:00:00.000Z";

/** `count` rows made by `select` (its `i` from 1 to `count`) into `table`, in one statement. */
const fill = (table: string, count: number, select: string) =>
  env.DB.prepare(
    `INSERT INTO ${table} WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${count}) ${select}`,
  ).run();

const countOf = async (query: string) => (await env.DB.prepare(query).first<{ n: number }>())?.n ?? 0;

describe("the cron's deletes of what expired, after a backlog", () => {
  it("delete expired operations a bounded chunk a statement and a run; the rest in the runs after, none kept", async () => {
    const partner = `partner-expired-${Date.now()}`;
    const op = (status: string, expires: string) =>
      `SELECT '${partner}-${status}-${expires.slice(0, 4)}-' || i, '${partner}', 'cancel', '{}', '${status}', 0, NULL, NULL, NULL, '${PAST}', '${PAST}', '${expires}' FROM n`;
    await env.DB.prepare(
      `INSERT INTO operations (op_ref, partner_id, kind, payload, status, attempts, result_status, result_body,
         result_location, created_at, updated_at, expires_at)
       WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${EXPIRED}) ${op("succeeded", PAST)}`,
    ).run();
    // Kept: unfinished, however old, and finished within their retention.
    for (const [status, expires] of [
      ["running", PAST],
      ["failed", FUTURE],
    ] as const)
      await env.DB.prepare(
        `INSERT INTO operations (op_ref, partner_id, kind, payload, status, attempts, result_status, result_body,
           result_location, created_at, updated_at, expires_at)
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10) ${op(status, expires)}`,
      ).run();

    const d1 = limitedD1(env.DB);
    const cronEnv = { ...env, DB: d1.db };
    const left = () => countOf(`SELECT count(*) AS n FROM operations WHERE partner_id = '${partner}'`);
    let runs = 0;
    for (; runs < 10 && (await left()) > 20; runs++) {
      d1.invocation();
      await deleteExpiredOperations(cronEnv, new Date());
    }
    expect(d1.mostChanged).toBeLessThanOrEqual(ROWS_PER_DELETE);
    expect(runs).toBe(2);
    expect(await left()).toBe(20);
    expect(
      await countOf(
        `SELECT count(*) AS n FROM operations WHERE partner_id = '${partner}' AND (status = 'running' OR expires_at = '${FUTURE}')`,
      ),
    ).toBe(20);
  }, 120_000);

  it("delete expired consumption queues the same way", async () => {
    const prefix = `report-expired-${Date.now()}`;
    await fill("consumption_queues", EXPIRED, `SELECT '${prefix}-' || i, '[]', '${PAST}' FROM n`);
    await fill("consumption_queues", 10, `SELECT '${prefix}-kept-' || i, '[]', '${FUTURE}' FROM n`);
    const d1 = limitedD1(env.DB);
    const cronEnv = { ...env, DB: d1.db };
    const left = () =>
      countOf(`SELECT count(*) AS n FROM consumption_queues WHERE report LIKE '${prefix}-%'`);
    let runs = 0;
    for (; runs < 10 && (await left()) > 10; runs++) {
      d1.invocation();
      await deleteExpiredConsumptionQueues(cronEnv, new Date());
    }
    expect(d1.mostChanged).toBeLessThanOrEqual(ROWS_PER_DELETE);
    expect(runs).toBe(2);
    expect(await left()).toBe(10);
    expect(
      await countOf(`SELECT count(*) AS n FROM consumption_queues WHERE report LIKE '${prefix}-kept-%'`),
    ).toBe(10);
  }, 120_000);
});
