import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { HORIZON_MS } from "../../src/cron/renewals";
import { subscriptionObject } from "../../src/objects/subscription-object";
import { expectBooksBalance } from "../books";
import {
  call,
  deliverRenewals as deliver,
  dueBy,
  expectOk,
  type Tenant,
  tenantWithCatalog,
  usageOf,
} from "../helpers";

/**
 * A term whose cron renewal was cancelled: "a term whose extension was cancelled is due again, and
 * its chain was cancelled, so it is not renewed" (README, "Quota held once per chain"), and the cron
 * expires it at its end, releasing the chain's hold. chains.test.ts proves it for an extension bought
 * by hand; here the cancelled successor is the term's own renewal.
 */

const noon = (y: number, month: number, day: number) => new Date(Date.UTC(y, month - 1, day, 12));

const read = (t: Tenant, id: string) =>
  expectOk(call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey }));

describe("a term whose renewal was cancelled", () => {
  it("is expired by the cron at its end, and the chain's hold released", async () => {
    const t = await tenantWithCatalog(1, 10);
    const y = new Date().getUTCFullYear() + 60;
    const first = (
      await expectOk(
        call("POST", "/v1/subscriptions/", {
          token: t.partnerKey,
          body: {
            objects: [
              {
                customer: t.customers[0],
                resource: "cpu",
                amount: 2,
                start_time: noon(y, 2, 1).toISOString(),
                period: "1 week",
                auto_renew: true,
              },
            ],
          },
        }),
        201,
      )
    ).objects[0];
    // The cron renews it a minute before its end; the customer cancels the renewal at once.
    await deliver([
      { subscription: first.id, at: new Date(Date.parse(first.end_time) - 60_000).toISOString() },
    ]);
    const renewal = (await read(t, first.id)).descendants[0];
    expect(renewal).toEqual(expect.any(String));
    await expectOk(call("DELETE", `/v1/subscriptions/${renewal}/`, { token: t.partnerKey }));
    // The first term still runs: it keeps the chain's hold until its end.
    expect(await usageOf(t, 0, "cpu")).toMatchObject({ usage: 2, pending: 0 });

    // The cron's run after its end: due (its successor ended), it is expired.
    const at = new Date(Date.parse(first.end_time) + 1000);
    const due = await dueBy(new Date(at.getTime() + HORIZON_MS));
    expect(due.map((d) => d.id)).toContain(first.id);
    const result = await deliver([{ subscription: first.id, at: at.toISOString() }]);
    expect(result.retryMessages).toEqual([]);

    const record = await subscriptionObject(env, first.id).get();

    expect(record).toMatchObject({ endReason: "expired" });
    expect(await usageOf(t, 0, "cpu")).toMatchObject({ usage: 0, pending: 0 });
    await expectBooksBalance(t);
  });
});
