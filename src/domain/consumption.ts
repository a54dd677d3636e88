import { endInstant } from "./endings";
import type { SubscriptionRecord } from "./subscriptions";

/** Consumption reports drawing on depletables: what one does to a depletable, and what it leaves. */

/**
 * How long what a consumption report took from each depletable, and the queue it walked, are
 * remembered: from when it was taken, and from when its first run began (`REPORT_DRAWS_FOR_MS`).
 */
export const REPORT_MEMORY_MS = 48 * 3_600_000;

/**
 * How long after its first run began a report may still draw: half its memory, so a run that
 * draws finds all that an earlier run took, however long it runs and whatever the clocks' drift.
 * A report can run again much later (an operation the consumer does not run for days, keyed
 * retries that keep dying, each extending the key 24 hours): such a run draws nothing and ends
 * the report given up (`PARTLY_DRAINED`), since what its first run took may be forgotten.
 */
export const REPORT_DRAWS_FOR_MS = 24 * 3_600_000;

/** Whether a run of a report at `now` may draw, its first run having begun at `since` at the earliest. */
export function mayStillDraw(since: Date, now: Date): boolean {
  return now.getTime() - since.getTime() <= REPORT_DRAWS_FOR_MS;
}

/** What a report given up says it did: a client reads it to decide what to report again. */
export const PARTLY_DRAINED =
  "part of the report may have been drained; read the subscriptions' remaining before reporting the rest";

/**
 * What consumption report `report`, asked for `quantity`, does to subscription `r`, given what it
 * took there before (`taken`; null: it never reached it), which stands whatever it asks now. One
 * that is no live depletable hands it all on; one whose purchase has not taken effect is passed
 * over (`passOver`, remembered as taking 0); else it takes what it has, up to `quantity`.
 */
export type Draw =
  | { kind: "taken before" | "undrawable" | "passed over"; took: number | null; leftover: number }
  | { kind: "draws"; took: number; leftover: number; drained: SubscriptionRecord };

export function drawOf(
  r: SubscriptionRecord,
  quantity: number,
  report: string,
  now: Date,
  taken: number | null,
  passOver: boolean,
): Draw {
  // Never below 0: a run that hands on less than an earlier run did must not give units back.
  if (taken !== null) return { kind: "taken before", took: taken, leftover: Math.max(0, quantity - taken) };
  if (r.kind !== "depletable" || r.remaining === null || r.endedAt !== null)
    return { kind: "undrawable", took: null, leftover: quantity };
  if (passOver) return { kind: "passed over", took: 0, leftover: quantity };
  const used = Math.min(r.remaining, quantity);
  // The record remembers its last reports too: a depletion whose quota step an instance left
  // half-way is committed by the step's finish, which writes the record and nothing else.
  const consumed = [...(r.consumed ?? []), { report, used }].slice(-32);
  // The latest time of a report that drew from it: this one's, or a younger one's.
  const drained = { ...r, remaining: r.remaining - used, consumed, drawnUntil: endInstant(r, now) };
  return { kind: "draws", took: used, leftover: quantity - used, drained };
}
