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

/** `db`, refusing every statement bound to `serial` (one commission's index row) and no other. */
const refusing = (db: D1Database, serial: number): D1Database =>
  new Proxy(db, {
    get(target, key) {
      if (key !== "prepare") return Reflect.get(target, key);
      return (query: string) => {
        const statement = target.prepare(query);
        return new Proxy(statement, {
          get(own, member) {
            if (member === "bind")
              return (...values: unknown[]) => {
                if (values.includes(serial)) throw new Error("D1 refuses this row");
                return own.bind(...values);
              };
            const value = Reflect.get(own, member);
            return typeof value === "function" ? value.bind(own) : value;
          },
        });
      };
    },
  });

/** A commission of one unit on `holder`'s own ledger, not auto-accepted: its serial. */
const issueOne = async (holder: string, name: string) => {
  const answer = await ledgerOf(env, holder).issue({
    home: holder,
    serviceId: unique("svc"),
    reference: null,
    name,
    provisions: [{ holder, source: "system", resource: "r", quantity: 1 }],
    force: false,
    autoAccept: false,
    issueTime: new Date().toISOString(),
  });
  if (!answer.ok) throw new Error(`issue refused: ${answer.reason}`);
  return answer.serial;
};

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
  it("counts a run with one row failing as failed, while the others index on every run", async () => {
    const holder = unique("holder");
    await ledgerOf(env, holder).setLimit("system", "r", 10);
    const stuck = await issueOne(holder, "stuck");
    const other = await issueOne(holder, "other");
    await unindex(holder, stuck);
    await unindex(holder, other);
    // One row D1 keeps refusing while it takes the rest (a poisoned row, a flaky partial outage).
    await setDb(holder, refusing(env.DB, stuck));

    // The run that indexed `other` still counts as failed: reset by any success, a D1 failing
    // some writes and taking others would keep the alarm at 5 s for as long as it lasts.
    expect(await runAlarm(holder)).toBe(5);
    expect(await indexedState(other)).toBe("pending");
    expect(await runAlarm(holder)).toBe(10);
    // Not starved: a row that missed its index since is taken by the next run, whose wait is the
    // backoff's (at most 5 min), and the stuck one tried again in it.
    const later = await issueOne(holder, "later");
    await unindex(holder, later);
    expect(await runAlarm(holder)).toBe(20);
    expect(await indexedState(later)).toBe("pending");
    expect(await indexedState(stuck)).toBeNull();

    await setDb(holder, env.DB);
    expect(await runAlarm(holder)).toBeNull();
    expect(await indexedState(stuck)).toBe("pending");
  });
});
