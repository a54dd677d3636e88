import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { armFault, disarmFaults } from "../../src/domain/faults";
import { issueCommission } from "../../src/objects/commission-issue";
import type { QuotaStep } from "../../src/objects/quota-steps";
import { subscriptionShard } from "../../src/objects/subscription-object";
import { expectBooksBalance } from "../books";
import { buyOne, call, expectOk, tenantWithCatalog, usageOf } from "../helpers";

afterEach(() => disarmFaults());

/**
 * A subscription's quota move whose call is still on its way to the ledger when the subscription,
 * having lost the answer, asks the ledger how it ended (its connection failed, or its instance died
 * and another took over). The ledger answered "not made", the subscription dropped its change, and
 * then the move arrived and was made: the customer held quota for an amount its cloud never had.
 */
describe("a quota move that arrives after its ledger answered it was not made", () => {
  it("is refused: the quota stays what the subscription holds (was: moved, books off)", async () => {
    const t = await tenantWithCatalog(1, 100);
    const sub = await buyOne(t, { resource: "cumulus", amount: 2 });
    // The move's call is lost on its way, and so is the question how it ended: the step stays open.
    armFault("subscription.step");
    armFault("subscription.asked");
    const died = await call("PATCH", `/v1/subscriptions/${sub.id}/`, {
      token: t.partnerKey,
      body: { amount: 5 },
    });
    expect(died.status, died.text).toBe(500);
    const step = await runInDurableObject(subscriptionShard(env, sub.id), (_i, state) => {
      const body = state.storage.sql
        .exec<{ body: string }>("SELECT body FROM quota_steps WHERE subscription = ?", sub.id)
        .toArray()[0]?.body;
      return body === undefined ? undefined : (JSON.parse(body) as QuotaStep);
    });
    expect(step?.next.amount).toBe(5);
    // The shard's alarm asks the ledger, which has not seen the move: the change is dropped.
    await runDurableObjectAlarm(subscriptionShard(env, sub.id));
    const read = await expectOk(call("GET", `/v1/subscriptions/${sub.id}/`, { token: t.partnerKey }));
    expect(read.amount).toBe(2);
    expect(
      await runInDurableObject(
        subscriptionShard(env, sub.id),
        (_i, state) => state.storage.sql.exec("SELECT 1 FROM quota_steps").toArray().length,
      ),
    ).toBe(0);
    // Then the lost call arrives.
    const late = await issueCommission(
      env,
      { serviceId: null, partnerId: t.partnerId },
      {
        name: step?.reference ?? "",
        force: false,
        autoAccept: true,
        reference: step?.reference ?? "",
        ...(step?.attempt ? { attempt: step.attempt } : {}),
        provisions: [
          { holder: t.customers[0] as string, source: "system", resource: "stratus.cumulus", quantity: 3 },
        ],
      },
      new Date(),
    ).then(
      () => "made",
      (error: Error) => error.message,
    );
    expect(await usageOf(t, 0, "cumulus")).toMatchObject({ usage: 2, pending: 0 });
    expect(late).toMatch(/given up by its subscription/);
    await expectBooksBalance(t);

    // The same change asked again is a new attempt, made as usual.
    const again = await call("PATCH", `/v1/subscriptions/${sub.id}/`, {
      token: t.partnerKey,
      body: { amount: 5 },
    });
    expect(again.status, again.text).toBe(200);
    expect(await usageOf(t, 0, "cumulus")).toMatchObject({ usage: 5, pending: 0 });
    await expectBooksBalance(t);
  });
});
