import { afterEach, describe, expect, it } from "vitest";
import type { CommissionRequest } from "../../src/objects/ledger-commissions";
import { LedgerSerials } from "../../src/objects/ledger-serials";
import { QuotaLedger } from "../../src/objects/quota-ledger";
import { expectBooksBalance } from "../books";
import { call, expectOk, gate, tenantWithCatalog, usageOf } from "../helpers";

/**
 * A subscription's quota move is a commission keyed by its reference, accepted in the call that
 * makes it. When that call fails on the caller's side (the connection to the ledger lost) the
 * subscription asks the ledger, by the reference, how the move ended: made, the change is
 * committed; not made, it is dropped. But an issue may still be under way in the ledger when that
 * question arrives: waiting on D1 for its next block of serials, which lets other calls in. The
 * ledger answered "no such commission" and then made the move: the quota held stayed one more
 * than the subscription's amount for good. The ledger now answers a reference only once no issue
 * of it is under way there.
 */

const issue = QuotaLedger.prototype.issue;
const settleReferenced = QuotaLedger.prototype.settleReferenced;
const ensure = LedgerSerials.prototype.ensure;
afterEach(() => {
  QuotaLedger.prototype.issue = issue;
  QuotaLedger.prototype.settleReferenced = settleReferenced;
  LedgerSerials.prototype.ensure = ensure;
});

describe("a subscription's quota move whose call is lost while the ledger still makes it", () => {
  it("is found by the subscription's question: the amount and the quota held agree", async () => {
    const t = await tenantWithCatalog(1, 100);
    const id = (
      await expectOk(
        call("POST", "/v1/subscriptions/", {
          token: t.partnerKey,
          body: { objects: [{ customer: t.customers[0], resource: "cumulus", amount: 3 }] },
        }),
        201,
      )
    ).objects[0].id as string;
    expect(await usageOf(t, 0, "cumulus")).toMatchObject({ usage: 3, pending: 0 });

    // The move's issue reaches the ledger and waits there for a block of serials (D1); its caller
    // sees the connection lost meanwhile.
    const slowBlock = gate();
    let underway: Promise<unknown> | null = null;
    LedgerSerials.prototype.ensure = async function (this: LedgerSerials, home: string) {
      LedgerSerials.prototype.ensure = ensure;
      await slowBlock.pass();
      return ensure.call(this, home);
    };
    QuotaLedger.prototype.issue = function (this: QuotaLedger, request: CommissionRequest) {
      if (!request.reference?.startsWith("subscription:") || underway) return issue.call(this, request);
      underway = issue.call(this, request);
      return Promise.reject(new Error("Network connection lost.")) as never;
    };
    // The subscription asks how the move ended while the issue is still under way: D1 answers then.
    QuotaLedger.prototype.settleReferenced = function (this: QuotaLedger, ...args) {
      slowBlock.release();
      return settleReferenced.apply(this, args);
    };
    const answered = await call("PATCH", `/v1/subscriptions/${id}/`, {
      token: t.partnerKey,
      body: { amount: 4 },
    });
    await underway;
    QuotaLedger.prototype.issue = issue;

    const read = await expectOk(call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey }));
    // Its answer was a 5xx (the call failed), which promises nothing: what counts is that the
    // ledger's answer decided it, here made, so the change is committed with it.
    expect(answered.status).toBe(500);
    expect(read.amount).toBe(4);
    expect(await usageOf(t, 0, "cumulus")).toMatchObject({ usage: read.amount, pending: 0 });
    await expectBooksBalance(t);
  });
});
