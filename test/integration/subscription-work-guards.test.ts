import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { subscriptionObject } from "../../src/objects/subscription-object";
import { expectBooksBalance } from "../books";
import { buyOne, call, expectOk, shardsHeld, tenantWithCatalog, usageOf } from "../helpers";

/**
 * What a subscription's object decides itself, between a change's acceptance and its run (an
 * operation, a slow request): mutation testing of 2026-12-04 found each of these guards removable
 * with every existing test green.
 */

describe("a subscription's object", () => {
  it("refuses a cancel under If-Match once the subscription changed since: 412, and it stays live", async () => {
    // README, "ETag and If-Match": the check and the write are one step, in the shard.
    const t = await tenantWithCatalog(1, 100);
    const sub = await buyOne(t, { resource: "mem", amount: 2, period: "1 month" });
    const object = subscriptionObject(env, sub.id);
    const read = await object.get();
    expect((await object.setAutoRenew(true)).ok).toBe(true);
    const cancelled = await object.cancel(new Date(), read?.version);
    expect(cancelled).toMatchObject({ ok: false, error: { kind: "precondition_failed" } });
    expect((await object.get())?.endedAt).toBeNull();
    expect(await usageOf(t, 0, "mem")).toMatchObject({ usage: 2, pending: 0 });
  });

  it("answers a resize that applied as applied when its work is given up: its operation reports what happened", async () => {
    const t = await tenantWithCatalog(1, 100);
    const sub = await buyOne(t, { resource: "cumulus", amount: 3 });
    const object = subscriptionObject(env, sub.id);
    expect((await object.changeAmount(5, new Date(), undefined, { ref: "resize-1" })).ok).toBe(true);
    expect(await object.giveUpWork("resize-1")).toEqual({ ok: true, value: { applied: true } });
    expect(await usageOf(t, 0, "cumulus")).toMatchObject({ usage: 5, pending: 0 });
  });

  it("creates an extension with the auto_renew its chain was set to while it was bought", async () => {
    // The toggle reaches the term before it only (the extension does not exist yet): the new term
    // takes the flag its predecessor has once it is created (README, auto_renew on the chain).
    const t = await tenantWithCatalog(1, 100);
    const sub = await buyOne(t, { resource: "mem", amount: 2, period: "1 month", auto_renew: false });
    const held = shardsHeld("create");
    const extending = call("POST", `/v1/subscriptions/${sub.id}/action/?do=extend`, {
      token: t.partnerKey,
      body: {},
      env: held.env,
    });
    await held.reached;
    await expectOk(
      call("POST", `/v1/subscriptions/${sub.id}/action/?do=auto_renew`, {
        token: t.partnerKey,
        body: { auto_renew: true },
      }),
    );
    held.release();
    const extension = await expectOk(extending);
    expect(extension.auto_renew).toBe(true);
    const read = await expectOk(call("GET", `/v1/subscriptions/${extension.id}/`, { token: t.partnerKey }));
    expect(read.auto_renew).toBe(true);
    await expectBooksBalance(t);
  });
});
