import { v7 } from "uuid";

/** UUIDv7 (RFC 9562): time-ordered, so ids sort by creation and double as cursors. */
export const uuidv7 = (): string => v7();

/**
 * The shard (the object that keeps it) of subscription `id`: the last four hex digits of the id.
 * Any UUID names one, so any id is found where it was created.
 */
export const shardOf = (id: string): string => id.slice(-4).toLowerCase();

/**
 * A new subscription's id: a UUIDv7 whose last four hex digits (random in a UUIDv7, after the
 * counter that orders ids made in the same millisecond) are its customer's shard. A customer's
 * subscriptions, renewals included, are kept together by one object that stays warm.
 */
export function subscriptionId(customerId: string): string {
  return uuidv7().slice(0, -4) + customerShard(customerId);
}

/** A new subscription's id in the shard of subscription `id`: a chain's terms are kept together. */
export const subscriptionIdBeside = (id: string): string => uuidv7().slice(0, -4) + shardOf(id);

/** FNV-1a of the customer id, folded to 16 bits: 65,536 shards. */
function customerShard(customerId: string): string {
  let hash = 0x811c9dc5;
  for (let i = 0; i < customerId.length; i++) {
    hash ^= customerId.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return ((hash ^ (hash >>> 16)) & 0xffff).toString(16).padStart(4, "0");
}
