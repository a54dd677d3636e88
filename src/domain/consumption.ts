import { endInstant } from "./endings";
import type { SubscriptionRecord } from "./subscriptions";

/** Consumption reports drawing on depletables: what one does to a depletable, and what it leaves. */

/**
 * How long what a consumption report took from each depletable, and the queue it walked, are
 * remembered: longer than the report can run again. Its Idempotency-Key keeps its answer 24
 * hours, and its operation is run again, or given up, well within that.
 */
export const REPORT_MEMORY_MS = 48 * 3_600_000;

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
