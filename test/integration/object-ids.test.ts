import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { shardOf } from "../../src/domain/ids";
import { idOf } from "../../src/objects/object-ids";
import { ledgerOf } from "../../src/objects/quota-ledger";
import { subscriptionShard } from "../../src/objects/subscription-object";

describe("Durable Object ids kept per isolate", () => {
  it("derives each name's id once, the same id idFromName gives", () => {
    const first = idOf(env.QUOTA_LEDGER, "user:kept-id");
    expect(idOf(env.QUOTA_LEDGER, "user:kept-id")).toBe(first);
    expect(first.equals(env.QUOTA_LEDGER.idFromName("user:kept-id"))).toBe(true);
    expect(idOf(env.QUOTA_LEDGER, "user:other-id").equals(first)).toBe(false);
  });

  it("keeps each namespace's names apart: a shard and a ledger of one name are different objects", () => {
    const asShard = idOf(env.SUBSCRIPTION, "same-name");
    const asLedger = idOf(env.QUOTA_LEDGER, "same-name");
    expect(asShard.equals(env.SUBSCRIPTION.idFromName("same-name"))).toBe(true);
    expect(asLedger.equals(env.QUOTA_LEDGER.idFromName("same-name"))).toBe(true);
    expect(asShard.toString()).not.toBe(asLedger.toString());
  });

  it("is what the ledger and shard clients reach", () => {
    const subscription = "0193a4f0-0000-7000-8000-0000000000a1";
    expect(ledgerOf(env, "user:kept-id").id.equals(env.QUOTA_LEDGER.idFromName("user:kept-id"))).toBe(true);
    expect(
      subscriptionShard(env, subscription).id.equals(env.SUBSCRIPTION.idFromName(shardOf(subscription))),
    ).toBe(true);
  });

  // Mutation testing of the ledger (2026-12-05): with the eviction removed, no test noticed that
  // an isolate kept every name it was ever asked for (a ledger per holder: unbounded).
  it("keeps at most as many names as there are shards, forgetting the oldest first", () => {
    const oldest = idOf(env.QUOTA_LEDGER, "user:oldest-id");
    const names = Array.from({ length: 65_536 }, (_, i) => `user:later-${i}`);
    for (const name of names) idOf(env.QUOTA_LEDGER, name);
    const newest = idOf(env.QUOTA_LEDGER, names[names.length - 1] as string);
    expect(idOf(env.QUOTA_LEDGER, names[names.length - 1] as string)).toBe(newest);
    const again = idOf(env.QUOTA_LEDGER, "user:oldest-id");
    expect(again).not.toBe(oldest);
    expect(again.equals(oldest)).toBe(true);
  });
});
