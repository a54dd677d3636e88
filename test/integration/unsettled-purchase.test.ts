import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { disarmFaults } from "../../src/domain/faults";
import { subscriptionObject } from "../../src/objects/subscription-object";
import { expectBooksBalance, purchaseDiedAt, recoverAll } from "../books";
import { call, expectOk, tenantWithCatalog, usageOf } from "../helpers";

afterEach(() => disarmFaults());

/**
 * A purchase answered at once whose request died, or is still on its way, before its orders: it
 * has not taken effect, and only its retry or the recovery sweep decides it. Nothing may use it
 * meanwhile (a cloud run on it would be billed past its undo; an amount or an extension would
 * hold quota nothing backs); a cancel gives it up.
 */
describe("a subscription whose purchase has not taken effect yet", () => {
  const diedBeforeOrders = async () => {
    const t = await tenantWithCatalog(1, 100);
    const { ids, planned } = await purchaseDiedAt(t, "purchase.created", ["cumulus", "mem"]);
    const of = (product: string) => ids.subscriptions[planned.findIndex((p) => p.product.id === product)];
    return { t, cloud: of("cumulus") as string, mem: of("mem") as string };
  };

  it("cannot be started, resized or extended (409, nothing changed), and is undone by the sweep alone", async () => {
    const { t, cloud, mem } = await diedBeforeOrders();
    const refused = [
      await call("POST", `/v1/subscriptions/${cloud}/action/?do=start`, { token: t.partnerKey }),
      await call("PATCH", `/v1/subscriptions/${cloud}/`, { token: t.partnerKey, body: { amount: 5 } }),
      await call("POST", `/v1/subscriptions/${mem}/action/?do=extend`, {
        token: t.partnerKey,
        body: { period: "1 month" },
      }),
    ];
    for (const r of refused) {
      expect(r.status, r.text).toBe(409);
      expect(r.body.detail).toMatch(/has not taken effect/);
    }
    expect(await subscriptionObject(env, cloud).get()).toMatchObject({ amount: 2, runs: [] });
    expect(await subscriptionObject(env, mem).get()).toMatchObject({ amount: 2, nextId: null });
    expect(await usageOf(t, 0, "mem")).toMatchObject({ usage: 2, pending: 2 });
    await recoverAll(t);
    for (const id of [cloud, mem])
      expect((await subscriptionObject(env, id).get())?.endReason).toBe("failed");
    expect(await usageOf(t, 0, "mem")).toMatchObject({ usage: 0, pending: 0 });
    await expectBooksBalance(t);
  });

  it("is started once it took effect: its orders written, the start settles its commission first", async () => {
    const t = await tenantWithCatalog(1, 100);
    const { ids, planned } = await purchaseDiedAt(t, "purchase.ordered", ["cumulus", "mem"]);
    const cloud = ids.subscriptions[planned.findIndex((p) => p.product.id === "cumulus")] as string;
    const started = await expectOk(
      call("POST", `/v1/subscriptions/${cloud}/action/?do=start`, { token: t.partnerKey }),
    );
    expect(started.run_state).toBe("running");
    expect(await usageOf(t, 0, "mem")).toMatchObject({ usage: 2, pending: 0 });
    await expectOk(call("POST", `/v1/subscriptions/${cloud}/action/?do=stop`, { token: t.partnerKey }));
    await recoverAll(t);
    await expectBooksBalance(t);
  });

  it("is given up by a cancel, and a cloud so ended is not running", async () => {
    const { t, cloud } = await diedBeforeOrders();
    const cancelled = await expectOk(call("DELETE", `/v1/subscriptions/${cloud}/`, { token: t.partnerKey }));
    expect(cancelled).toMatchObject({ end_reason: "failed", run_state: "stopped" });
    await recoverAll(t);
    await expectBooksBalance(t);
  });
});
