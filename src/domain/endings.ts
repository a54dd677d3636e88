import { isRunning, runInstant, stop } from "./metering";
import type { SubscriptionRecord } from "./subscriptions";

/** How a subscription ends: as of when, and as failed. */

/**
 * When `r` ends if it is ended at `now`: a depletable no earlier than the latest report that drew
 * from it, which may be younger than `now` (an older report depleting it after a younger one drew,
 * a cancel whose time was taken before that report drew). Ended before a report's time, it is out
 * of that report's queue (`depletionQueue`), and the report run again would drain the next one.
 */
export function endInstant(r: Pick<SubscriptionRecord, "drawnUntil">, now: Date): string {
  const at = now.toISOString();
  return r.drawnUntil !== undefined && r.drawnUntil > at ? r.drawnUntil : at;
}

/**
 * `r` ended as failed at `at`: its purchase was undone. It never releases a hold (`endsChainHold`):
 * one that held its own quota had it given back by its purchase's rejected commission, which
 * `holdReleased` records; a term of a chain (`heldBy`) held nothing of its own, and the chain's
 * hold stays with the term that holds it. A cloud stops running: nothing that ended is billed on.
 */
export const failedAt = (r: SubscriptionRecord, at: string): SubscriptionRecord => ({
  ...r,
  runs: isRunning(r.runs) ? stop(r.runs, runInstant(r.runs, new Date(at))) : r.runs,
  endedAt: at,
  endReason: "failed",
  ...(r.heldBy ? {} : { holdReleased: true }),
});

/**
 * `r` ended for `reason` at `now` (`endInstant`): a cloud stops running, and the term keeps the
 * deployment status it ended with (a later report on it changes that term only).
 */
export const endedFor = (
  r: SubscriptionRecord,
  reason: "cancelled" | "expired" | "depleted",
  now: Date,
): SubscriptionRecord => ({
  ...r,
  runs: isRunning(r.runs) ? stop(r.runs, runInstant(r.runs, now)) : r.runs,
  endedAt: endInstant(r, now),
  endReason: reason,
  endedDeploymentStatus: r.deploymentStatus,
});
