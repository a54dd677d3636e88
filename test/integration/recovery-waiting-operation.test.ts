import { describe, expect, it } from "vitest";
import { expectBooksBalance, recoverAll } from "../books";
import { call, expectOk, usageOf, waitingTerm } from "../helpers";

/**
 * README, "Recovery": a purchase run as an operation follows the operation; still queued or
 * running (a purchase waiting on its vendor runs for up to its deadline), it is left to it. The
 * recovery sweep, past its bound, must not undo it (mutation testing, 2026-12-04: with "running"
 * dropped from what is left to the operation, the sweep undid every purchase waiting on its
 * vendor longer than RECOVERY_AFTER_SECONDS, and no test noticed).
 */
describe("a purchase waiting on its vendor past the recovery bound", () => {
  it("is left to its operation by the sweep, and completes when its vendor deploys it", async () => {
    const { t, product, id, report, location, completed } = await waitingTerm("1 month", false);

    await recoverAll(t);
    const waiting = await expectOk(call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey }));
    expect(waiting.end_reason).toBeNull();
    const operation = await call("GET", location, { token: t.partnerKey });
    expect(operation.status, "still running").toBe(202);

    await expectOk(report(id, "DEPLOYED"));
    await completed();
    expect((await usageOf(t, 0, product)).pending).toBe(0);
    await expectBooksBalance(t);
  });
});
