import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { ledgerOf, type QuotaLedger } from "../../src/objects/quota-ledger";
import { unique } from "../helpers";

/**
 * A quota ledger's alarm first asks about its stale open commissions of stratus's own (one
 * operations-queue message each), then indexes and finishes the rest. A queue refusing the
 * messages made the whole alarm throw before any of that: retried a few times by the platform and
 * then dropped, its commissions stayed unindexed and its steps unfinished until the ledger was
 * called again. The ask now fails alone, and is made again a recovery bound later.
 */

const setEnv = (holder: string, changes: Partial<Env>) =>
  runInDurableObject(ledgerOf(env, holder), (instance: QuotaLedger) => {
    const own = instance as unknown as { env: Env };
    own.env = { ...own.env, ...changes };
  });

const downQueue = {
  send: () => Promise.reject(new Error("the queue is down")),
  sendBatch: () => Promise.reject(new Error("the queue is down")),
} as unknown as Queue;

describe("a quota ledger's alarm while the operations queue is down", () => {
  it("still indexes its commissions, and keeps its alarm set", async () => {
    const holder = unique("holder");
    const ledger = ledgerOf(env, holder);
    await ledger.setLimit("system", "r", 10);
    const serials = await runInDurableObject(ledger, async (instance: QuotaLedger) => {
      const issued: number[] = [];
      for (const [name, serviceId] of [
        ["stale", null],
        ["unindexed", unique("svc")],
      ] as const) {
        const answer = await instance.issue({
          home: holder,
          serviceId,
          reference: null,
          name,
          provisions: [{ holder, source: "system", resource: "r", quantity: 1 }],
          force: false,
          autoAccept: false,
          issueTime: new Date().toISOString(),
        });
        if (!answer.ok) throw new Error(`issue refused: ${answer.reason}`);
        issued.push(answer.serial);
      }
      return issued;
    });
    const [stale, unindexed] = serials as [number, number];
    // One open with a recovery context, long unchanged; one its index write never reached D1.
    await runInDurableObject(ledger, (_i, state) => {
      state.storage.sql.exec(
        "UPDATE commissions SET recovery = ?, updated_at = 0 WHERE serial = ?",
        JSON.stringify({ home: holder }),
        stale,
      );
      state.storage.sql.exec("UPDATE commissions SET indexed = 0 WHERE serial = ?", unindexed);
    });
    await env.DB.prepare("DELETE FROM commission_index WHERE serial = ?").bind(unindexed).run();
    await setEnv(holder, { OPERATIONS: downQueue });

    await runDurableObjectAlarm(ledger);

    const row = await env.DB.prepare("SELECT state FROM commission_index WHERE serial = ?")
      .bind(unindexed)
      .first<{ state: string }>();
    expect(row?.state).toBe("pending");
    const alarm = await runInDurableObject(ledger, (_i, state) => state.storage.getAlarm());
    expect(alarm, "asked again a bound later").not.toBeNull();
    await setEnv(holder, { OPERATIONS: env.OPERATIONS });
  });
});
