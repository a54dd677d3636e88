import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { QuotaLedger } from "../../src/objects/quota-ledger";
import { ledgerOf } from "../../src/objects/quota-ledger";
import { call, eventually, expectOk, tenantWithCatalog } from "../helpers";

/**
 * A customer's ledger keeps every commission it was home to: each purchase, extension and renewal
 * adds one. Two of its statements read them all: the follow-up of every purchase settled at its
 * accept (an extension, a purchase run as an operation) cleared its flag with a scan of the whole
 * table, and each run of the alarm (set by every service commission not accepted at once) walked
 * every serial after the last it reached to find the few unfinished. Both read what they change
 * (review of scale edges, 2026-12-04).
 */

const HISTORY = 3000;

/** The ledger's commissions, each statement on them noted with the rows it read. */
async function noted(ledger: DurableObjectStub<QuotaLedger>) {
  return runInDurableObject(ledger, (instance, state) => {
    const commissions = (instance as unknown as { commissions: { sql: SqlStorage } }).commissions;
    const real = state.storage.sql;
    const cursors: Array<{ query: string; cursor: SqlStorageCursor<Record<string, SqlStorageValue>> }> = [];
    commissions.sql = new Proxy(real, {
      get(target, key) {
        if (key === "exec")
          return (query: string, ...bindings: unknown[]) => {
            const cursor = target.exec(query, ...bindings);
            cursors.push({ query, cursor });
            return cursor;
          };
        const value = Reflect.get(target, key);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    return cursors;
  });
}

describe("a ledger with a long history of commissions", () => {
  it("settles an extension and runs its alarm reading no more than what they change", async () => {
    const t = await tenantWithCatalog(1, 100);
    const [customer] = t.customers as [string];
    const bought = await expectOk(
      call("POST", "/v1/subscriptions/", {
        token: t.partnerKey,
        body: { objects: [{ customer, resource: "cpu", amount: 1, period: "1 day" }] },
      }),
      201,
    );
    const ledger = ledgerOf(env, customer);
    // The history, straight into storage: resolved commissions of earlier purchases.
    await runInDurableObject(ledger, (_instance, state) => {
      state.storage.sql.exec(
        `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
         INSERT INTO commissions (serial, service_id, reference, name, provisions, state, issue_time, updated_at, version)
         SELECT 2000000000 + i, NULL, 'history-' || i, '', '[]', 'accepted', '', 0, 1 FROM n`,
        HISTORY,
      );
    });
    const cursors = await noted(ledger);

    // Run as an operation, the extension is settled at its accept, and followed up.
    const accepted = await call("POST", `/v1/subscriptions/${bought.objects[0].id}/action/?do=extend`, {
      token: t.partnerKey,
      headers: { prefer: "respond-async" },
    });
    expect(accepted.status, accepted.text).toBe(202);
    const done = await eventually(async () => {
      const polled = await call("GET", accepted.headers.get("location") as string, { token: t.partnerKey });
      return polled.status === 202 ? undefined : polled;
    }, "the extension's operation");
    expect(done.status, done.text).toBe(200);
    await runDurableObjectAlarm(ledger);

    const read = await runInDurableObject(ledger, () =>
      cursors.map(({ query, cursor }) => ({
        query: query.replace(/\s+/g, " ").slice(0, 80),
        rows: cursor.rowsRead,
      })),
    );
    expect(read.length).toBeGreaterThan(0);
    expect(read.filter((r) => r.rows >= HISTORY)).toEqual([]);
  });
});
