import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { recoveryBoundMs } from "../../src/domain/recovery";
import { ledgerOf, type QuotaLedger } from "../../src/objects/quota-ledger";
import { unique } from "../helpers";

/**
 * Found by killing `npm start` (kill -9) in the middle of 23 purchases sent at once, none retried:
 * their commissions, issued within two seconds, stayed pending; the ledger's alarm, set for the
 * first one's bound, asked about those already past it and then woke again a whole bound later,
 * so the commissions issued a second after the first stayed pending (their quota held, their
 * subscriptions live without an order) for twice RECOVERY_AFTER_SECONDS. The alarm now wakes when
 * the next open commission reaches the bound.
 */
describe("a quota ledger's recovery sweep", () => {
  it("wakes when the next open commission passes the bound, not a bound after the oldest", async () => {
    const holder = unique("holder");
    const ledger = ledgerOf(env, holder);
    await ledger.setLimit("system", "r", 10);
    const bound = recoveryBoundMs(env);
    const serials = await runInDurableObject(ledger, async (instance: QuotaLedger) => {
      const issued: number[] = [];
      for (const name of ["first", "second"]) {
        const answer = await instance.issue({
          home: holder,
          serviceId: null,
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
    const [first, second] = serials as [number, number];
    // Both stratus's own, their requests gone: the first past the bound, the second 5 s short of it.
    const now = Date.now();
    await runInDurableObject(ledger, async (_i, state) => {
      for (const [serial, at] of [
        [first, now - bound - 1_000],
        [second, now - bound + 5_000],
      ] as const) {
        state.storage.sql.exec(
          "UPDATE commissions SET recovery = ?, updated_at = ? WHERE serial = ?",
          JSON.stringify({ home: holder }),
          at,
          serial,
        );
      }
      // The alarm the first one's issue set, due now.
      await state.storage.setAlarm(Date.now());
    });

    await runDurableObjectAlarm(ledger);

    const alarm = await runInDurableObject(ledger, (_i, state) => state.storage.getAlarm());
    expect(alarm, "the alarm is set").not.toBeNull();
    expect(alarm as number, "set for when the second commission passes the bound").toBeLessThanOrEqual(
      Date.now() + 5_000 + 1_000,
    );

    // Nothing left for later tests: resolve both and drop the alarm.
    await runInDurableObject(ledger, async (instance: QuotaLedger, state) => {
      for (const serial of [first, second]) await instance.resolve(serial, null, "reject");
      await state.storage.deleteAlarm();
    });
  });
});

describe("a quota ledger's recovery sweep at the bound", () => {
  it("asks about a commission open for exactly the bound, not one a millisecond short of it", async () => {
    // The alarm wakes when the next open commission reaches the bound (above) and sweeps as of
    // then: one left out at that instant waits a whole bound more for the sweep after.
    const holder = unique("holder");
    const ledger = ledgerOf(env, holder);
    await ledger.setLimit("system", "r", 10);
    const bound = recoveryBoundMs(env);
    await runInDurableObject(ledger, async (instance: QuotaLedger, state) => {
      const answer = await instance.issue({
        home: holder,
        serviceId: null,
        reference: null,
        name: "open",
        provisions: [{ holder, source: "system", resource: "r", quantity: 1 }],
        force: false,
        autoAccept: false,
        issueTime: new Date().toISOString(),
      });
      if (!answer.ok) throw new Error(`issue refused: ${answer.reason}`);
      const changed = Date.now() - 10_000;
      state.storage.sql.exec(
        "UPDATE commissions SET recovery = ?, updated_at = ? WHERE serial = ?",
        JSON.stringify({ home: holder }),
        changed,
        answer.serial,
      );
      expect(await instance.sweep(changed + bound - 1)).toEqual([]);
      expect(await instance.sweep(changed + bound)).toEqual([{ home: holder, serial: answer.serial }]);
      // Nothing left for the consumer of those asks, nor for later tests.
      await instance.resolve(answer.serial, null, "reject");
      await state.storage.deleteAlarm();
    });
  });
});
