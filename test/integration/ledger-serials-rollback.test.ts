import { evictDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { LedgerHoldings } from "../../src/objects/ledger-holdings";
import { ledgerOf } from "../../src/objects/quota-ledger";
import { call, expectOk, tenant } from "../helpers";

/**
 * A ledger reserves its serials a few at a time, in the transaction that hands out the first of
 * them (`LedgerSerials`). Should that transaction roll back, so does the reservation: what the
 * instance keeps in memory must be read again, or it goes on handing out serials storage never
 * reserved, and the next instance hands them out a second time (mutation testing of the ledger,
 * 2026-12-05: with `LedgerSerials.forget` emptied, no test noticed).
 */

const hold = LedgerHoldings.prototype.hold;
afterEach(() => {
  LedgerHoldings.prototype.hold = hold;
});

describe("a ledger whose issue rolled back the transaction that reserved its serials", () => {
  it("hands out no serial twice once a new instance takes over", async () => {
    const t = await tenant({ customers: 1, limit: 100 });
    const holder = t.customers[0] as string;
    const issue = () =>
      call("POST", "/account/v1.0/commissions", {
        token: t.serviceToken,
        body: { provisions: [{ holder, source: "system", resource: t.resources[0], quantity: 1 }] },
      });
    // The ledger's first issue reserves its first serials, then its hold throws (as a storage
    // write failing there would): the whole transaction rolls back.
    LedgerHoldings.prototype.hold = () => {
      throw new Error("injected crash at holdings.hold");
    };
    expect((await issue()).status).toBe(500);
    LedgerHoldings.prototype.hold = hold;

    const first = (await expectOk(issue(), 201)).serial as number;
    await evictDurableObject(ledgerOf(env, holder));
    const later = [(await expectOk(issue(), 201)).serial, (await expectOk(issue(), 201)).serial];
    expect(later).not.toContain(first);
    expect(await expectOk(call("GET", "/account/v1.0/commissions", { token: t.serviceToken }))).toEqual([
      first,
      ...later,
    ]);
    const held = (await ledgerOf(env, holder).holdings()).find((h) => h.resource === t.resources[0]);
    expect(held).toMatchObject({ usage: 3, pending: 3 });
  });
});
