import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { armFault, disarmFaults } from "../../src/domain/faults";
import { subscriptionObject, subscriptionShard } from "../../src/objects/subscription-object";
import { call, tenantWithCatalog, usageOf } from "../helpers";
import { buyFor, legacyObject, toObjectOfItsOwn } from "../legacy";

afterEach(() => disarmFaults());

describe("take-overs from an old object at once", () => {
  for (let round = 0; round < 4; round++) {
    it(`round ${round}: an old object's half-done amount change, taken over by reads and its alarm at once, is finished once`, async () => {
      const t = await tenantWithCatalog(1);
      const id = await buyFor(t, "cumulus");
      armFault("subscription.moved");
      const failed = await call("PATCH", `/v1/subscriptions/${id}/`, {
        token: t.partnerKey,
        body: { amount: 3 },
      });
      expect(failed.status).toBe(500);
      await toObjectOfItsOwn(id, { alarmAt: Date.now() + 30_000 });
      const answers = await Promise.all([
        call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey }),
        runDurableObjectAlarm(legacyObject(id)),
        call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey }),
        call("PATCH", `/v1/subscriptions/${id}/`, { token: t.partnerKey, body: { amount: 2 } }),
        call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey }),
      ]);
      // None of them is told the subscription does not exist.
      expect(
        answers.filter((a) => typeof a !== "boolean").map((a) => (a as { status: number }).status),
      ).toEqual([200, 200, 200, 200]);
      await runDurableObjectAlarm(subscriptionShard(env, id));
      const steps = await runInDurableObject(
        subscriptionShard(env, id),
        (_i, state) =>
          state.storage.sql.exec("SELECT body FROM quota_steps WHERE subscription = ?", id).toArray().length,
      );
      await evictDurableObject(subscriptionShard(env, id));
      const r = await subscriptionObject(env, id).get();
      const usage = await usageOf(t, 0, "cumulus");
      expect(usage.usage).toBe(r?.amount);
      expect(steps).toBe(0);
    });
  }
});
