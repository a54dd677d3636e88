import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { ledgerOf } from "../../src/objects/quota-ledger";
import { call, expectOk, tenant } from "../helpers";

/**
 * A service resolving a serial that is not its own is answered 404, and its home ledger is left
 * as it was. `QuotaLedger.resolve` set the ledger's alarm (for the index) before it read whose the
 * serial was: any service, naming serials of other services' blocks, made their ledgers schedule
 * alarm runs. The owner is now checked first.
 */
describe("a resolve of a serial that is not the caller's", () => {
  it("is 404 and sets no alarm on the ledger that keeps the serial", async () => {
    const owner = await tenant({ customers: 1, limit: 5 });
    const other = await tenant({ customers: 1, limit: 5 });
    const holder = owner.customers[0] as string;
    const { serial } = await expectOk(
      call("POST", "/account/v1.0/commissions", {
        token: owner.serviceToken,
        body: { provisions: [{ holder, source: "system", resource: owner.resources[0], quantity: 1 }] },
      }),
      201,
    );
    const ledger = ledgerOf(env, holder);
    const alarm = () => runInDurableObject(ledger, (_i, state) => state.storage.getAlarm());
    // Issued and indexed: the alarm it set before its index is not what this test looks at.
    await runInDurableObject(ledger, (_i, state) => state.storage.deleteAlarm());

    for (const named of [serial, serial + 1]) {
      const refused = await call("POST", `/account/v1.0/commissions/${named}/action`, {
        token: other.serviceToken,
        body: { accept: "" },
      });
      expect({ named, status: refused.status, alarm: await alarm() }).toEqual({
        named,
        status: 404,
        alarm: null,
      });
    }
    // The owner's resolve still goes through.
    const accepted = await call("POST", `/account/v1.0/commissions/${serial}/action`, {
      token: owner.serviceToken,
      body: { accept: "" },
    });
    expect(accepted.status).toBe(200);
  });
});
