import { otherLiveTerms } from "../db/subscriptions";
import { recoveryBoundMs } from "../domain/recovery";
import type { SubscriptionRecord } from "../domain/subscriptions";

/**
 * A subscription's place in its extension chain, and the chain's quota hold (README, "Quota held
 * once per chain"): a chain holds its amount once, from the purchase of its first term; its
 * extensions and renewals hold nothing more while a term before them still holds it; ending a
 * term releases the hold only when no other term of the chain is live and no extension is on its
 * way after it.
 */

/** Reads a subscription by id (its object), or null if it was never created. */
export type Lookup = (id: string) => Promise<SubscriptionRecord | null>;

/**
 * Whether the term before `r` is live and UNDEPLOYED. Read from inside `r`'s section, so a report on
 * that term after the read walks to `r` behind it.
 */
export async function undeployedBefore(r: SubscriptionRecord, lookup: Lookup): Promise<boolean> {
  const previous = r.previousId === null ? null : await lookup(r.previousId);
  return previous?.endedAt === null && previous.deploymentStatus === "UNDEPLOYED";
}

/** The release of the hold `r` belongs to: one per hold, whichever of its terms ends it. */
export const releaseReference = (r: Pick<SubscriptionRecord, "id" | "heldBy">): string =>
  `release:${r.heldBy ?? r.id}`;

/** When a place reserved at `reservedAt` counts as abandoned: its request is taken for dead. */
export function placeExpiresAt(env: Env, r: Pick<SubscriptionRecord, "nextReservedAt">): number {
  const reservedAt = r.nextReservedAt ? Date.parse(r.nextReservedAt) : 0;
  return reservedAt + recoveryBoundMs(env);
}

/**
 * Whether the place after `r` was reserved for an extension or renewal that never came: created
 * failed (its purchase was undone, so it will never be bought, bound or not), or an extension's,
 * reserved longer than the recovery bound ago and not created. A renewal's place not created is
 * never abandoned: its own ids finish it.
 */
export async function placeAbandoned(env: Env, r: SubscriptionRecord, lookup: Lookup): Promise<boolean> {
  if (r.nextId === null) return false;
  const next = await lookup(r.nextId);
  if (next?.endReason === "failed") return true;
  return next === null && r.nextId !== r.renewal?.subscription && Date.now() >= placeExpiresAt(env, r);
}

/**
 * Whether ending `r` at `now` ends its chain's hold. Not if it was released already, nor while an
 * extension after it is live or on its way (reserved, not created yet: it will hold the chain, or
 * give the place back if it is undone), nor while another term of the chain is live.
 */
export async function endsChainHold(
  env: Env,
  r: SubscriptionRecord,
  now: Date,
  lookup: Lookup,
): Promise<boolean> {
  // A failed term never releases (`failed` in subscription.ts; one stored before that says so too).
  if (r.holdReleased || r.endReason === "failed") return false;
  if (r.nextId !== null) {
    const next = await lookup(r.nextId);
    if (next === null ? Date.now() < placeExpiresAt(env, r) : next.endedAt === null) return false;
  }
  // The read model names the candidates; each one's own record decides. A term ended meanwhile
  // (another term of the chain cancelled or expired at once, in the same shard) may not be pushed
  // yet: taken for live, neither ending would release the chain's hold.
  for (const id of await otherLiveTerms(env, r.rootId, r.id, now)) {
    const other = await lookup(id);
    if (!other || (await termLive(other, r.id, now, lookup))) return false;
  }
  return true;
}

/**
 * `otherLiveTerms`'s test, on a term's own record: live, or over but auto-renewing with its
 * renewal on its way. One over with a term created after it that the read model may not have yet
 * is live if that term is (`ending`, the term being ended, is not).
 */
async function termLive(r: SubscriptionRecord, ending: string, now: Date, lookup: Lookup): Promise<boolean> {
  if (r.id === ending || r.endedAt !== null) return false;
  if (r.endTime === null || Date.parse(r.endTime) > now.getTime()) return true;
  const next = r.nextId === null ? null : await lookup(r.nextId);
  return next === null ? r.autoRenew : termLive(next, ending, now, lookup);
}

/**
 * `r` with the place after it free again. A term that expired unrenewed (no `renewal_error`: it
 * was not auto-renewing when it ended) and that nothing follows now renews nothing: a flag turned
 * on meanwhile, taken for the chain while an extension held the place, goes off with that
 * extension, as `setAutoRenew` refuses to turn it on for such a term (the flag would tell the
 * partner it renews).
 */
export function placeGivenBack(r: SubscriptionRecord): SubscriptionRecord {
  const over = r.endReason === "expired" && r.renewalError === null;
  return { ...r, nextId: null, nextReservedAt: null, ...(over ? { autoRenew: false } : {}) };
}
