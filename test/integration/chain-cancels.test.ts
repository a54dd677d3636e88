import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { subscriptionObject, subscriptionShard } from "../../src/objects/subscription-object";
import { expectBooksBalance } from "../books";
import { call, expectOk, shardsHeld, tenantWithCatalog, usageOf } from "../helpers";

/**
 * A chain's hold is released once when its last live term ends, however its terms end at once
 * (README, "Quota"): each ending asks which other terms the read model has live, and each one's own
 * record decides, since an end committed a moment ago in the same shard may not be pushed yet.
 * Found by review.
 */

/** Sets `id`'s `nextReservedAt` to `ago` ms back: its extension was bought that long ago. */
async function reservedAgo(id: string, ago: number) {
  const shard = subscriptionShard(env, id);
  await runInDurableObject(shard, (_i, state) => {
    const row = state.storage.sql.exec<{ body: string }>("SELECT body FROM records WHERE id = ?", id).one();
    const body = { ...JSON.parse(row.body), nextReservedAt: new Date(Date.now() - ago).toISOString() };
    state.storage.sql.exec("UPDATE records SET body = ? WHERE id = ?", JSON.stringify(body), id);
  });
  await evictDurableObject(shard);
}

describe("both terms of a chain cancelled at once", () => {
  it("releases the chain's quota once both have ended", async () => {
    const t = await tenantWithCatalog(1, 100);
    const bought = await expectOk(
      call("POST", "/v1/subscriptions/", {
        token: t.partnerKey,
        body: { objects: [{ customer: t.customers[0], resource: "mem", amount: 2, period: "1 month" }] },
      }),
      201,
    );
    const a = bought.objects[0].id as string;
    const b = (
      await expectOk(
        call("POST", `/v1/subscriptions/${a}/action/?do=extend`, { token: t.partnerKey, body: {} }),
      )
    ).id as string;
    expect(await usageOf(t, 0, "mem")).toMatchObject({ usage: 2, pending: 0 });
    // The extension was bought a while ago (longer than the recovery bound).
    await reservedAgo(a, 86_400_000);
    // The partner cancels the chain: its future term and its current one, two DELETEs at once.
    const held = shardsHeld("cancel");
    const cancelB = call("DELETE", `/v1/subscriptions/${b}/`, { token: t.partnerKey, env: held.env });
    await held.reached;
    const cancelA = call("DELETE", `/v1/subscriptions/${a}/`, { token: t.partnerKey, env: held.env });
    await new Promise((resolve) => setTimeout(resolve, 500));
    held.release();
    expect((await cancelB).status).toBe(200);
    expect((await cancelA).status).toBe(200);
    // Whatever the shard's alarm has left to do, it does.
    const shard = subscriptionShard(env, a);
    for (let i = 0; i < 5 && (await runDurableObjectAlarm(shard)); i++);
    const [ra, rb] = [await subscriptionObject(env, a).get(), await subscriptionObject(env, b).get()];
    expect(ra?.endReason).toBe("cancelled");
    expect(rb?.endReason).toBe("cancelled");
    // Nothing of the chain is live: its hold is released, once. (Before, each cancel took the
    // other term for live, A by its record, B by the read model A's end had not reached yet, and
    // neither released; no wake was left to try again, so the quota stayed held for good.)
    expect(await usageOf(t, 0, "mem")).toMatchObject({ usage: 0, pending: 0 });
    expect([ra?.holdReleased, rb?.holdReleased].filter((x) => x === true)).toHaveLength(1);
    await expectBooksBalance(t);
  });
});
