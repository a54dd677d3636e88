import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { disarmFaults } from "../../src/domain/faults";
import { subscriptionObject, subscriptionShard } from "../../src/objects/subscription-object";
import { call, expectOk, tenantWithCatalog, usageOf } from "../helpers";
import { buyFor, legacyObject, toObjectOfItsOwn } from "../legacy";

afterEach(() => disarmFaults());

describe("a take-over from an old object, answered late", () => {
  it("is the only one: a read waits for it, and a quota step finished once is never brought back", async () => {
    const t = await tenantWithCatalog(1);
    const id = await buyFor(t, "cumulus");
    // An amount change to 3 whose quota move was made, its commit lost: the old object kept the
    // record before it and the step (as QuotaSteps.move writes it), as a crash leaves them.
    const before = (await subscriptionObject(env, id).get())!;
    const changed = await expectOk(
      call("PATCH", `/v1/subscriptions/${id}/`, { token: t.partnerKey, body: { amount: 3 } }),
    );
    expect(changed.amount).toBe(3);
    const next = { ...before, amount: 3 };
    const step = JSON.stringify({
      reference: `subscription:${id}:v${before.version}:amount:3`,
      holder: before.customerId,
      next,
    });
    await toObjectOfItsOwn(id, { alarmAt: Date.now() + 30_000, as: { body: JSON.stringify(before), step } });

    // The old object answers its first hand-over late (as a slow RPC would): held by a gate.
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let calls = 0;
    await runInDurableObject(legacyObject(id), (instance) => {
      const proto = Object.getPrototypeOf(instance) as { handOver: (...a: unknown[]) => unknown };
      const original = proto.handOver;
      proto.handOver = async function (this: unknown, ...args: unknown[]) {
        const state = original.apply(this, args) as { step: string | null } | null;
        if (calls++ === 0) {
          await gate;
          proto.handOver = original;
        }
        return state;
      };
    });

    // Take-over 1: the old object's alarm (its hand-over held at the gate).
    const alarm = runDurableObjectAlarm(legacyObject(id));
    await new Promise((r) => setTimeout(r, 300));
    expect(calls).toBe(1);
    // Take-over 2: a read. It waits for take-over 1 (one at a time per subscription), whose
    // hand-over arrives now; the shard then finishes the step (amount 3) before answering.
    const reading = expectOk(call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey }));
    await new Promise((r) => setTimeout(r, 300));
    release();
    expect((await reading).amount).toBe(3);
    expect(await alarm).toBe(true);
    // The customer changes the amount on (quota moves to 5).
    await expectOk(call("PATCH", `/v1/subscriptions/${id}/`, { token: t.partnerKey, body: { amount: 5 } }));
    const steps = await runInDurableObject(
      subscriptionShard(env, id),
      (_i, state) =>
        state.storage.sql.exec("SELECT body FROM quota_steps WHERE subscription = ?", id).toArray().length,
    );

    // The shard restarts (eviction, deploy, memory).
    await evictDurableObject(subscriptionShard(env, id));
    const after = await subscriptionObject(env, id).get();
    const usage = await usageOf(t, 0, "cumulus");
    expect(steps).toBe(0);
    expect(after?.amount).toBe(5);
    expect(usage.usage).toBe(after?.amount);
  });
});
