/**
 * Why a change cannot apply to a subscription, read from its record and free of I/O: its kind,
 * its state, the bounds of a cloud's quantity and run history, a vendor's deployment moves.
 */
import { refused } from "./errors";
import { historyFull, isRunning, MAX_RUN_INTERVALS, runInstant, start } from "./metering";
import { MAX_PRICE_MINOR } from "./money";
import type { SubscriptionRecord } from "./subscriptions";
import { keptRuns } from "./usage";
import { canMoveTo, type DeploymentPatch } from "./webhooks";

/** Why a change cannot apply to a subscription: a bad request for its kind, or a conflict with its state. */
export interface Refusal {
  kind: "bad_request" | "conflict";
  message: string;
  point: string;
}

/** Hours of the longest piece one usage line bills: a whole 31-day month (lines never span two). */
const LONGEST_LINE_HOURS = 744n;

/**
 * Why a cloud of `amount` at `unitPriceMinor` an hour cannot be run, or null: a month of it running
 * would be one usage line past `MAX_PRICE_MINOR`, which could not be charged exactly.
 */
export function cloudRefusal(amount: number, unitPriceMinor: bigint): string | null {
  const month = BigInt(amount) * unitPriceMinor * LONGEST_LINE_HOURS;
  return month > MAX_PRICE_MINOR
    ? `a month of running would cost ${month} minor units, more than the ${MAX_PRICE_MINOR} one usage line may cost`
    : null;
}

export function amountChangeRefusal(
  r: Pick<SubscriptionRecord, "kind" | "endedAt" | "unitPriceMinor" | "runs" | "amount">,
  amount: number,
): Refusal | null {
  if (r.endedAt !== null)
    return { kind: "conflict", message: "the subscription has ended", point: "/amount" };
  // Only a CaaS cloud is billed for what it runs; every other kind was paid for up front, at its
  // amount, and "the only parameter that can be changed is the auto renew" (subscriptions API).
  if (r.kind === "caas") {
    const refusal = cloudRefusal(amount, BigInt(r.unitPriceMinor));
    if (refusal) return { kind: "bad_request", message: refusal, point: "/amount" };
    return amount !== r.amount && isRunning(r.runs) && historyFull(r.runs)
      ? historyFullRefusal("/amount")
      : null;
  }
  const instead =
    r.kind === "depletable"
      ? "it is used up by consumption reports; buy another subscription for more"
      : "buy another subscription for more, or extend this one for another term";
  return {
    kind: "conflict",
    message: `a ${r.kind} subscription is prepaid: only auto_renew can change; ${instead}`,
    point: "/amount",
  };
}

/**
 * Why auto_renew cannot be turned to `autoRenew` on `r`, or null: ended, with nothing after it, a
 * chain over renews nothing, so a flag turned on would tell the partner it will.
 */
export function autoRenewRefusal(
  r: Pick<SubscriptionRecord, "autoRenew" | "endedAt" | "nextId">,
  autoRenew: boolean,
): Refusal | null {
  return autoRenew && !r.autoRenew && r.endedAt !== null && r.nextId === null
    ? {
        kind: "conflict",
        message: "the subscription has ended and nothing follows it: there is nothing to renew",
        point: "/auto_renew",
      }
    : null;
}

/** `r` with auto_renew `value`, unless that is refused (`autoRenewRefusal`). */
export function withAutoRenew(r: SubscriptionRecord, value: boolean): SubscriptionRecord {
  const refusal = autoRenewRefusal(r, value);
  if (refusal) throw refused(refusal);
  return r.autoRenew === value ? r : { ...r, autoRenew: value };
}

export function runRefusal(
  r: Pick<SubscriptionRecord, "kind" | "endedAt" | "runs" | "amount" | "deploymentStatus">,
  action: "start" | "stop",
  now: Date,
): Refusal | null {
  if (r.kind !== "caas")
    return { kind: "bad_request", message: `only CaaS subscriptions can ${action}`, point: "/do" };
  if (r.endedAt !== null) return { kind: "conflict", message: "the subscription has ended", point: "/do" };
  if (action !== "start" || isRunning(r.runs)) return null;
  // Billed by the hour for an application its vendor has taken down, as an extension would be
  // charged for one (a stop always applies).
  if (r.deploymentStatus === "UNDEPLOYED")
    return {
      kind: "conflict",
      message: "the subscription was undeployed by its vendor; start it once its vendor deploys it again",
      point: "/do",
    };
  // Counted as the history the start leaves: a month that ended before it, stopped, is billed
  // whole and leaves the history with the start's write.
  const started = start(r.runs, runInstant(r.runs, now), r.amount);
  return keptRuns(started) > MAX_RUN_INTERVALS ? historyFullRefusal("/do") : null;
}

/** A cloud started (or resized running) `MAX_RUN_INTERVALS` times since its last month wholly billed. */
function historyFullRefusal(point: string): Refusal {
  return {
    kind: "conflict",
    message: `this cloud's run history holds ${MAX_RUN_INTERVALS} intervals since its last month billed, the most one keeps: it starts (or resizes while running) again once this month is billed; a stop always applies`,
    point,
  };
}

/**
 * Why a vendor's report (the vendor API's PATCH) cannot apply to `r`, or null. A subscription that
 * has ended sends no more events, so a change to it would reach no one, and would show a cancelled
 * or failed purchase live again: it takes only UNDEPLOYED (the vendor saying it deprovisioned) and
 * reports that change nothing.
 */
export function deploymentRefusal(
  r: Pick<SubscriptionRecord, "deploymentStatus" | "endedAt" | "syndicatedEndpoints" | "endUserInstructions">,
  patch: DeploymentPatch,
): Refusal | null {
  const status = patch.deploymentStatus ?? r.deploymentStatus;
  if (!canMoveTo(r.deploymentStatus, status)) {
    const message = `deploymentStatus cannot go from ${r.deploymentStatus} to ${status}`;
    return { kind: "bad_request", message, point: "/deploymentStatus" };
  }
  if (r.endedAt === null) return null;
  const moved = status !== r.deploymentStatus && status !== "UNDEPLOYED";
  const endpoints =
    patch.syndicatedEndpoints !== undefined &&
    patch.syndicatedEndpoints.join("\n") !== r.syndicatedEndpoints.join("\n");
  const instructions =
    patch.endUserInstructions !== undefined && patch.endUserInstructions !== r.endUserInstructions;
  const point = moved
    ? "/deploymentStatus"
    : endpoints
      ? "/syndicatedEndpoints"
      : instructions
        ? "/endUserInstructions"
        : null;
  if (point === null) return null;
  return {
    kind: "conflict",
    // Never deployed (FAILED, or PENDING: its purchase undone before its vendor reported, by the
    // 7-day deadline), it cannot move to UNDEPLOYED: naming it would send the vendor to a 400.
    message:
      r.deploymentStatus === "FAILED" || r.deploymentStatus === "PENDING"
        ? `the subscription has ended, ${r.deploymentStatus}, never deployed: it takes no more changes`
        : "the subscription has ended: it takes only deploymentStatus UNDEPLOYED",
    point,
  };
}
