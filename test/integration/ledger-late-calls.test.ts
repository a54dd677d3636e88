import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { LedgerForsakenMoves } from "../../src/objects/ledger-forsaken-moves";
import { ledgerOf } from "../../src/objects/quota-ledger";
import { unique } from "../helpers";

/**
 * Calls that reach a holder's ledger late, or twice (mutation testing of the ledger, 2026-12-04:
 * each of these held quota for nothing with the guard removed, and no test noticed).
 */

const DAY_MS = 24 * 60 * 60 * 1000;

async function ledgerWithLimit(limit: number) {
  const holder = unique("holder");
  const ledger = ledgerOf(env, holder);
  await ledger.setLimit("system", "r", limit);
  const holding = async () => (await ledger.holdings()).find((h) => h.resource === "r");
  return { ledger, holding };
}

describe("a holder's ledger", () => {
  it("holds nothing for a step that arrives after its commission was rolled back there", async () => {
    const { ledger, holding } = await ledgerWithLimit(10);
    // The home's alarm rolled back a stalled issue across holders: this ledger rejected a serial it
    // never held. The issue's own hold, slow on its way, arrives after.
    await ledger.reject(41);
    expect(await ledger.hold(41, [{ source: "system", resource: "r", quantity: 4 }], false)).toEqual({
      ok: true,
    });
    expect(await holding()).toMatchObject({ usage: 0, pending: 0 });
  });

  it("counts a hold retried once, and its accept retried once", async () => {
    const { ledger, holding } = await ledgerWithLimit(10);
    const provisions = [{ source: "system", resource: "r", quantity: 3 }];
    await ledger.hold(42, provisions, false);
    await ledger.hold(42, provisions, false);
    expect(await holding()).toMatchObject({ usage: 3, pending: 3 });
    await ledger.accept(42);
    await ledger.accept(42);
    // Held again after its accept (a retried step arriving last): still counted once.
    await ledger.hold(42, provisions, false);
    expect(await holding()).toMatchObject({ usage: 3, pending: 0 });
  });
});

describe("the moves a ledger answered not made", () => {
  it("are each refused for a day, whatever other moves are forsaken meanwhile", async () => {
    const { ledger } = await ledgerWithLimit(10);
    await runInDurableObject(ledger, (_i, state) => {
      const forsaken = new LedgerForsakenMoves(state.storage.sql);
      const t0 = Date.now();
      forsaken.forsake("move-a", "attempt-a", t0);
      forsaken.forsake("move-b", "attempt-b", t0 + 1_000);
      expect(forsaken.has("move-a", "attempt-a"), "an earlier move, after another's answer").toBe(true);
      expect(forsaken.has("move-a", "attempt-b"), "another attempt of it").toBe(false);
      forsaken.forsake("move-c", "attempt-c", t0 + DAY_MS + 500);
      expect(forsaken.has("move-a", "attempt-a"), "a move forsaken over a day before").toBe(false);
      expect(forsaken.has("move-b", "attempt-b"), "one forsaken less than a day before").toBe(true);
    });
  });
});
