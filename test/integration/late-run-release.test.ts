import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { subscriptionObject } from "../../src/objects/subscription-object";
import {
  call,
  deliverRenewals as deliver,
  expectOk,
  type Tenant,
  tenantWithCatalog,
  usageOf,
} from "../helpers";

/** A chain A, B, C (C auto-renewing), B cancelled; a cron run late past C's end expires A, renews C. */

const noon = (y: number, month: number, day: number) => new Date(Date.UTC(y, month - 1, day, 12));

const extend = (t: Tenant, id: string) =>
  expectOk(call("POST", `/v1/subscriptions/${id}/action/?do=extend`, { token: t.partnerKey, body: {} }));

describe("a late cron run over a chain with a cancelled middle term", () => {
  it("keeps the chain's hold while the chain is renewed", async () => {
    const t = await tenantWithCatalog(1, 10);
    const y = new Date().getUTCFullYear() + 61;
    const a = (
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
              },
            ],
          },
        }),
        201,
      )
    ).objects[0];
    const b = await extend(t, a.id);
    const c = await extend(t, a.id);
    await expectOk(
      call("POST", `/v1/subscriptions/${c.id}/action/?do=auto_renew`, {
        token: t.partnerKey,
        body: { auto_renew: true },
      }),
    );
    await expectOk(call("DELETE", `/v1/subscriptions/${b.id}/`, { token: t.partnerKey }));
    expect(await usageOf(t, 0, "cpu")).toMatchObject({ usage: 2, pending: 0 });
    // The cron run after C's end (it was down, or C's renewal failed on time and is retried).
    const at = new Date(Date.parse(c.end_time) + 60_000).toISOString();
    expect(
      (
        await deliver([
          { subscription: a.id, at },
          { subscription: c.id, at },
        ])
      ).retryMessages,
    ).toEqual([]);
    const d = (await subscriptionObject(env, c.id).get())?.nextId;
    const renewal = d ? await subscriptionObject(env, d).get() : null;
    expect(renewal).toMatchObject({ endedAt: null, startTime: c.end_time });
    // D is live (the chain was renewed): the chain holds its 2.
    expect(await usageOf(t, 0, "cpu")).toMatchObject({ usage: 2, pending: 0 });
  });
});
