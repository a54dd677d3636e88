import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import {
  type SubscriptionObject,
  subscriptionObject,
  subscriptionShard,
} from "../../src/objects/subscription-object";
import {
  call,
  eventually,
  expectOk,
  syndicatedProduct,
  tenantWithCatalog,
  vendorEndpoints,
} from "../helpers";
import { limitedD1 } from "../limited-d1";

vendorEndpoints();

/**
 * A syndicated subscription's events wait in its shard until its push hands them to the webhooks
 * pipeline, one at a time (a D1 write and a queue message each). While that fails (the webhooks
 * queue down) they pile up, one a change its vendor is told of. The push after handed every
 * waiting event on in one invocation: past D1's 1,000 queries it failed half-way, every time, and
 * was retried later and later. Now a push hands on a bounded number and wakes the subscription at
 * once for the rest.
 */

const CHANGES = 1_010;

const setEnv = (id: string, patch: Partial<Env>) =>
  runInDurableObject(subscriptionShard(env, id), (instance: SubscriptionObject) => {
    const own = instance as unknown as { env: Env };
    own.env = { ...own.env, ...patch };
  });

const waiting = (id: string) =>
  runInDurableObject(
    subscriptionShard(env, id),
    (_i, state) =>
      state.storage.sql
        .exec<{ n: number }>("SELECT count(*) AS n FROM events WHERE subscription = ? AND dispatched = 0", id)
        .one().n,
  );

describe("a syndicated subscription whose events piled up while they could not be handed on", () => {
  it("hands every one on once, each push within D1's limits", async () => {
    const t = await tenantWithCatalog(1, 100);
    const { product } = await syndicatedProduct(t);
    const r = await call("POST", "/v1/subscriptions/", {
      token: t.partnerKey,
      body: { objects: [{ customer: t.customers[0], resource: product, amount: 1, period: "1 month" }] },
    });
    expect(r.status, r.text).toBe(202);
    const sub = await eventually(async () => {
      const list = await expectOk(call("GET", "/v1/subscriptions/?status=all", { token: t.partnerKey }));
      return list.objects[0];
    }, "the subscription");
    const id = sub.id as string;
    await eventually(async () => ((await waiting(id)) === 0 ? true : undefined), "its CREATED handed on");

    const down = {
      send: async () => {
        throw new Error("the webhooks queue is down");
      },
    };
    await setEnv(id, { WEBHOOKS: down as unknown as Queue });
    const object = subscriptionObject(env, id);
    for (let i = 0; i < CHANGES; i++) {
      const changed = await object.setAutoRenew(i % 2 === 0);
      expect(changed.ok).toBe(true);
    }
    expect(await waiting(id)).toBe(CHANGES);

    const sent: string[] = [];
    const queue = {
      send: async (body: { deliveryId: string }) => {
        sent.push(body.deliveryId);
      },
    };
    const d1 = limitedD1(env.DB);
    await setEnv(id, { DB: d1.db, WEBHOOKS: queue as unknown as Queue });
    const shard = subscriptionShard(env, id);
    for (let run = 0; run < 40 && (await waiting(id)) > 0; run++) {
      d1.invocation();
      await runDurableObjectAlarm(shard);
      expect(d1.refused, `queries D1 refused by run ${run + 1}`).toBe(0);
    }
    expect(await waiting(id)).toBe(0);
    const deliveries = await env.DB.prepare(
      "SELECT count(*) AS n, count(DISTINCT sequence) AS sequences FROM webhook_deliveries WHERE subscription_id = ?",
    )
      .bind(id)
      .first<{ n: number; sequences: number }>();
    // The CREATED, then one a change.
    expect(deliveries).toEqual({ n: CHANGES + 1, sequences: CHANGES + 1 });
    expect(new Set(sent).size).toBe(CHANGES);
    expect(sent.length).toBe(CHANGES);
    await setEnv(id, { DB: env.DB, WEBHOOKS: env.WEBHOOKS });
  }, 180_000);
});
