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
});
