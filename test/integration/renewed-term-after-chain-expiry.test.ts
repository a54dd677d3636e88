import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { subscriptionObject } from "../../src/objects/subscription-object";
import { expectBooksBalance } from "../books";
import {
  buyOne,
  call,
  deliverRenewals as deliver,
  dueBy,
  expectOk,
  tenantWithCatalog,
  usageOf,
} from "../helpers";

/**
 * A chain renewed once, then turned off: its last term expires at its end. The term it renewed
 * was followed by a term that ran its course, so it is due for nothing: a second cron run (DESIGN:
 * "a second run does nothing new") neither expires it a day after its end nor tells its vendor
 * it ended after the chain's last term did.
 */

const noon = (y: number, month: number, day: number) => new Date(Date.UTC(y, month - 1, day, 12));

describe("a renewed term once its renewal has expired", () => {
  it("is not due again: the runs after the chain's end change nothing", async () => {
    const t = await tenantWithCatalog(1, 10);
    const y = new Date().getUTCFullYear() + 67;
    const a = await buyOne(t, {
      resource: "cpu",
      amount: 2,
      start_time: noon(y, 2, 1).toISOString(),
      period: "1 week",
      auto_renew: true,
    });
    const renewAt = new Date(Date.parse(a.end_time) - 60_000).toISOString();
    expect((await deliver([{ subscription: a.id, at: renewAt }])).retryMessages).toEqual([]);
    const bId = (await subscriptionObject(env, a.id).get())?.nextId;
    expect(bId).toBeTruthy();
    const b = await expectOk(call("GET", `/v1/subscriptions/${bId}/`, { token: t.partnerKey }));
    expect(b).toMatchObject({ start_time: a.end_time, extends: a.id });
    // Turned off on the chain's first id, as the grouped list shows it.
    await expectOk(
      call("POST", `/v1/subscriptions/${a.id}/action/?do=auto_renew`, {
        token: t.partnerKey,
        body: { auto_renew: false },
      }),
    );
    const after = new Date(Date.parse(b.end_time) + 60_000);
    expect((await deliver([{ subscription: b.id, at: after.toISOString() }])).retryMessages).toEqual([]);
    expect(await subscriptionObject(env, b.id).get()).toMatchObject({ endReason: "expired" });
    expect(await usageOf(t, 0, "cpu")).toMatchObject({ usage: 0, pending: 0 });

    // The next runs: A, renewed by B, is not due, and a message for it (a run that read it before)
    // leaves it as it was.
    const later = new Date(after.getTime() + 5 * 60_000);
    expect((await dueBy(later)).map((d) => d.id)).not.toContain(a.id);
    expect((await deliver([{ subscription: a.id, at: later.toISOString() }])).retryMessages).toEqual([]);
    const aNow = await expectOk(call("GET", `/v1/subscriptions/${a.id}/`, { token: t.partnerKey }));
    expect(aNow).toMatchObject({ end_reason: null, ended_at: null, descendants: [b.id] });
    expect(await usageOf(t, 0, "cpu")).toMatchObject({ usage: 0, pending: 0 });
    await expectBooksBalance(t);
  });
});
