import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { ledgerOf, type QuotaLedger } from "../../src/objects/quota-ledger";
import { failingD1, unique } from "../helpers";

/**
 * A quota ledger whose commissions D1 cannot index (D1 down) tries again from its alarm. Every run
 * set the next one 5 s later however long D1 stayed down: an hour of outage made some 720 failing
 * runs a ledger, each logging every row it tried. Each failing run in a row now doubles the wait,
 * from 5 s to at most 5 min, and a run that indexes brings it back to 5 s.
 */

const setDb = (holder: string, db: D1Database) =>
  runInDurableObject(ledgerOf(env, holder), (instance: QuotaLedger) => {
    const own = instance as unknown as { env: Env };
    own.env = { ...own.env, DB: db };
  });

/** The commission's index row gone, and the ledger told it was never written: the alarm's work. */
const unindex = async (holder: string, serial: number) => {
  await runInDurableObject(ledgerOf(env, holder), (_i, state) => {
    state.storage.sql.exec("UPDATE commissions SET indexed = 0 WHERE serial = ?", serial);
  });
  await env.DB.prepare("DELETE FROM commission_index WHERE serial = ?").bind(serial).run();
};

/** Runs the alarm; answers how long after the run it is set for, in seconds (null: not set). */
const runAlarm = async (holder: string) => {
  const ledger = ledgerOf(env, holder);
  expect(await runDurableObjectAlarm(ledger)).toBe(true);
  const at = await runInDurableObject(ledger, (_i, state) => state.storage.getAlarm());
  return at === null ? null : Math.round((at - Date.now()) / 1000);
};

const indexedState = async (serial: number) =>
  (
    await env.DB.prepare("SELECT state FROM commission_index WHERE serial = ?")
      .bind(serial)
      .first<{ state: string }>()
  )?.state ?? null;

describe("a quota ledger's alarm while D1 cannot index its commissions", () => {
  it("waits longer after each failing run, up to 5 minutes, and 5 s again once one indexes", async () => {
    const holder = unique("holder");
    const ledger = ledgerOf(env, holder);
    await ledger.setLimit("system", "r", 10);
    const answer = await ledger.issue({
      home: holder,
      serviceId: unique("svc"),
      reference: null,
      name: "unindexed",
      provisions: [{ holder, source: "system", resource: "r", quantity: 1 }],
      force: false,
      autoAccept: false,
      issueTime: new Date().toISOString(),
    });
    if (!answer.ok) throw new Error(`issue refused: ${answer.reason}`);
    await unindex(holder, answer.serial);
    await setDb(holder, failingD1(env.DB, "prepare", "batch"));

    const waits: Array<number | null> = [];
    for (let run = 0; run < 9; run++) waits.push(await runAlarm(holder));
    expect(waits).toEqual([5, 10, 20, 40, 80, 160, 300, 300, 300]);

    await setDb(holder, env.DB);
    expect(await runAlarm(holder), "indexed: nothing left to wake for").toBeNull();
    expect(await indexedState(answer.serial)).toBe("pending");

    // D1 down again: the first failing run waits 5 s, as the count started over.
    await unindex(holder, answer.serial);
    await runInDurableObject(ledger, (_i, state) => state.storage.setAlarm(Date.now()));
    await setDb(holder, failingD1(env.DB, "prepare", "batch"));
    expect([await runAlarm(holder), await runAlarm(holder)]).toEqual([5, 10]);
    await setDb(holder, env.DB);
  });
});
