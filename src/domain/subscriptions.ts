/**
 * A subscription's record and the rules read from it, free of I/O: status, pricing of a term,
 * and the wire shape (the CloudSigma schema's field names, plus customer, product and run state).
 */
import type { DeliveryMode, ProductKind } from "./catalog";
import { type CreatedWith, deployedTerm } from "./durations";
import { chargeFor, isRunning, type RunInterval } from "./metering";
import { currency, formatMinor } from "./money";
import type { SettledRuns } from "./usage";
import { chainDeployment, type DeploymentStatus } from "./webhooks";

export type Status = "active" | "inactive" | "expired";
export const STATUS_FILTERS = ["active", "inactive", "expired", "all", "notexpired"] as const;
export type StatusFilter = (typeof STATUS_FILTERS)[number];

/**
 * Values one list filter (`resource=a,b,…`) may name, repeats included. The filter is one D1
 * statement (a page cannot be split), so this keeps it well under D1's 100 bound parameters.
 */
export const MAX_FILTER_VALUES = 50;

export type EndReason = "cancelled" | "depleted" | "expired" | "failed";

/** Everything the SubscriptionObject keeps about one subscription. Times are ISO 8601 UTC. */
export interface SubscriptionRecord {
  id: string;
  partnerId: string;
  customerId: string;
  orderId: string;
  product: string;
  kind: ProductKind;
  quotaResource: string;
  unitPriceMinor: number;
  currency: string;
  amount: number;
  startTime: string;
  /** Null for open-ended subscriptions: depletables and CaaS clouds last until used up or cancelled. */
  endTime: string | null;
  period: string | null;
  createdWith: CreatedWith | null;
  autoRenew: boolean;
  /** The price of the term bought, in minor units (a decimal string: it may pass 2^53). */
  priceMinor: string;
  /** What is left of a depletable subscription; null for the others. */
  remaining: number | null;
  endedAt: string | null;
  endReason: EndReason | null;
  rootId: string;
  previousId: string | null;
  nextId: string | null;
  /**
   * What its last 32 consumption reports that drew from it took, by report id: a report run again
   * takes nothing more. Its shard remembers every report for longer (`ReportDraws`).
   */
  consumed?: Array<{ report: string; used: number }>;
  /** A depletable's latest time of a consumption report that drew from it: it ends no earlier (`endInstant`). */
  drawnUntil?: string;
  /**
   * The references of the recent starts and stops applied to a cloud: one run again (a keyed
   * retry, a redelivered operation) changes nothing, so it never undoes a later stop or start.
   */
  ranBy?: string[];
  /** The same for the recent changes of a cloud's quantity: a resize run again never undoes a later one. */
  resizedBy?: string[];
  /** The references of the recent bare toggles of auto_renew applied here: one run again flips nothing. */
  toggledBy?: string[];
  /**
   * The references of recent starts, stops and resizes whose operation was given up before they
   * applied (`giveUpWork`): a run of theirs still under way changes nothing, as their answer says.
   */
  givenUpBy?: string[];
  /**
   * The term whose purchase holds the quota of the chain this one belongs to (absent: itself). An
   * extension bought while its chain holds its amount holds nothing more.
   */
  heldBy?: string;
  /** Set on the term whose end released its chain's hold. */
  holdReleased?: boolean;
  /** When the place after it was reserved (absent on records made before this was kept). */
  nextReservedAt?: string | null;
  /** Run intervals of CaaS subscriptions; a new CaaS subscription starts stopped. */
  runs: RunInterval[];
  /** A cloud's months wholly billed, gone from `runs` (`settleRuns`); absent until a month is. */
  settledRuns?: SettledRuns;
  /** The commission holding this subscription's amount on the customer's quota. */
  serial: number | null;
  /** The ledger that keeps commission `serial` (absent on records made before it was kept: the customer's). */
  commissionHome?: string;
  /** Syndicated products are provisioned by their vendor, who reports the deployment status. */
  delivery: DeliveryMode;
  vendorId: string | null;
  deploymentStatus: DeploymentStatus;
  syndicatedEndpoints: string[];
  endUserInstructions: string | null;
  /**
   * Its UNDEPLOYED was carried from an earlier term of its chain (`chainDeployment`): DEPLOYED
   * reported there lifts it. Absent: the status is its own (its vendor reported it on this term).
   */
  undeployedWithChain?: boolean;
  /**
   * The deployment status it had when it ended (absent: live, or ended before this was kept): the
   * status its vendor's last report on it while live left, which a report after its end (that term
   * only) does not change. A carry from it naming another is older than that report (`continueDeployment`).
   */
  endedDeploymentStatus?: DeploymentStatus;
  /** The operation that bought it, completed when its vendor reports DEPLOYED. */
  operationRef: string | null;
  /** Numbers this subscription's events, so receivers can drop stale ones. */
  sequence: number;
  /** The ids its automatic renewal creates, chosen once so a repeated renewal finds them. */
  renewal: RenewalIds | null;
  /** Why the automatic renewal could not be bought, when it could not. */
  renewalError: string | null;
  /** Grows with every change; orders projections and, later, events. */
  version: number;
  createdAt: string;
}

/** The ids an automatic renewal creates: its subscription and its order. */
export interface RenewalIds {
  subscription: string;
  order: string;
}

/**
 * What a due renewal found: renew, with the record as it now stands and the renewal's ids (`fresh`:
 * chosen by this attempt, so nothing was made under them yet); expire; or nothing.
 */
export type RenewalPlan =
  | { step: "skip" }
  | { step: "expire"; record: SubscriptionRecord }
  | { step: "renew"; record: SubscriptionRecord; ids: RenewalIds; fresh: boolean };

/**
 * What a due renewal does with a subscription at `at`: renew it (auto_renew on, and nothing but
 * its own planned renewal follows it), expire it (auto_renew off and its term over, or the term
 * after it cancelled: the chain was cancelled), or nothing (ended, open-ended, extended by hand,
 * the term after it ran its course, or auto_renew off and its term not over yet). A term waiting
 * for its vendor is left alone. `successor`: the term after it, as it stands (null: none, or
 * none that counts).
 */
export function renewalStep(
  r: Pick<
    SubscriptionRecord,
    "endedAt" | "endTime" | "nextId" | "renewal" | "autoRenew" | "deploymentStatus"
  >,
  at: Date,
  successor: Pick<SubscriptionRecord, "endedAt" | "endReason"> | null = null,
): "renew" | "expire" | "skip" {
  // A term still waiting for its vendor has not started: it starts, and ends, once deployed.
  if (r.endedAt !== null || r.endTime === null || r.deploymentStatus === "PENDING") return "skip";
  if (ranItsCourse(successor)) return "skip";
  const over = Date.parse(r.endTime) <= at.getTime();
  if (successor !== null && successor.endedAt !== null) return over ? "expire" : "skip";
  if (r.nextId !== null && r.nextId !== r.renewal?.subscription) return "skip";
  if (r.autoRenew) return "renew";
  return over ? "expire" : "skip";
}

/**
 * Whether the term after a subscription ran its course: it expired at its end, so the
 * subscription was followed to its own end and the chain ended with that later term, which
 * released its hold and told its vendor. Nothing is due for the subscription then (unlike a term
 * after it cancelled or undone, which ends the chain with it): expired later, it would end a
 * second time, a run after the chain's end, with a `DELETED` after its successor's.
 */
const ranItsCourse = (successor: Pick<SubscriptionRecord, "endReason"> | null): boolean =>
  successor?.endReason === "expired";

/**
 * Term `record` of a chain as it is created after `previous`: with the auto_renew `previous` has
 * now, and what its vendor reported of it since `record` was bought (`chainDeployment`).
 */
export function following(record: SubscriptionRecord, previous: SubscriptionRecord): SubscriptionRecord {
  // The status a new term was bought with is its chain's: taken from its predecessor, as carried.
  const status = chainDeployment({ ...record, undeployedWithChain: true }, previous.deploymentStatus);
  const { undeployedWithChain: _, ...rest } = record;
  return {
    ...rest,
    autoRenew: previous.autoRenew,
    ...(status === null ? {} : { deploymentStatus: status }),
    ...((status ?? record.deploymentStatus) === "UNDEPLOYED" ? { undeployedWithChain: true } : {}),
  };
}

/** Whether a record has stopped being usable at `now`: ended explicitly, or past its end time. */
export function isExpired(r: Pick<SubscriptionRecord, "endedAt" | "endTime">, now: Date): boolean {
  return r.endedAt !== null || (r.endTime !== null && Date.parse(r.endTime) <= now.getTime());
}

/**
 * Status from time and depletion. A depletable that is not used up is active unless it waits
 * (`waits`): its purchase has not taken effect, or an older one of the same customer and product
 * whose purchase did is still being used; consumption reports drain no other. A syndicated
 * subscription is inactive until its vendor reports it deployed: its term starts then.
 */
export function statusOf(
  r: Pick<SubscriptionRecord, "endedAt" | "endTime" | "startTime" | "deploymentStatus">,
  now: Date,
  waits: boolean,
): Status {
  if (r.endedAt !== null) return "expired";
  if (r.deploymentStatus === "PENDING") return "inactive";
  if (isExpired(r, now)) return "expired";
  if (Date.parse(r.startTime) > now.getTime() || waits) return "inactive";
  return "active";
}

/**
 * Whether a change left the record as it was (a vendor asserting DEPLOYED again, auto_renew set to
 * what it is): then it is no new version, makes no event and no new ETag, and leaves a vendor that
 * answers each MODIFIED by asserting its state nothing to answer.
 */
export const sameRecord = (next: SubscriptionRecord, current: SubscriptionRecord): boolean =>
  next === current || JSON.stringify(next) === JSON.stringify(current);

/**
 * The status of an extension chain as a whole (`groupedsubscriptions`): active while one of its
 * terms is, else inactive while one is still to come, else expired. From the read model's columns,
 * where a term waiting for its vendor reads as not started.
 */
export function chainStatus(
  terms: ReadonlyArray<{ startTime: string; endTime: string | null; endedAt: string | null }>,
  now: Date,
): Status {
  const statuses = terms.map((t) =>
    isExpired(t, now) ? "expired" : Date.parse(t.startTime) > now.getTime() ? "inactive" : "active",
  );
  if (statuses.includes("active")) return "active";
  return statuses.includes("inactive") ? "inactive" : "expired";
}

/**
 * How `groupedsubscriptions` shows an extension chain's end and renewal: its end is the latest
 * end of a term as it ran (a term cut short ends when it ended; one cancelled before it began runs
 * not at all), and it renews by its last term's flag only while that term has not ended (nothing
 * follows an ended one: the cron expires the term before it at its own end). The last term's
 * `end_time` and flag alone would show, once it is cancelled, a term the customer never gets and a
 * renewal that never comes.
 */
export function chainEnding(
  terms: ReadonlyArray<{
    startTime: string;
    endTime: string | null;
    endedAt: string | null;
    autoRenew: boolean;
  }>,
  last: { endTime: string | null; endedAt: string | null; autoRenew: boolean },
): { endTime: string | null; autoRenew: boolean } {
  let end: string | null = null;
  for (const t of terms) {
    const ended = t.endedAt === null ? null : Date.parse(t.endedAt);
    if (ended !== null && ended <= Date.parse(t.startTime)) continue;
    const cutShort = ended !== null && t.endTime !== null && ended < Date.parse(t.endTime);
    const termEnd = cutShort ? t.endedAt : t.endTime;
    if (termEnd !== null && (end === null || Date.parse(termEnd) > Date.parse(end))) end = termEnd;
  }
  // A chain none of whose terms ran keeps the end it was bought with.
  return { endTime: end ?? last.endTime, autoRenew: last.autoRenew && last.endedAt === null };
}

/**
 * The record once its vendor reports it deployed at `at`: a term that waited starts then
 * (`deployedTerm`), priced as the term it gets. Open-ended and ended ones stay as they are.
 */
export function startDeployed(r: SubscriptionRecord, at: Date): SubscriptionRecord {
  if (r.endTime === null || r.endedAt !== null) return r;
  const term = deployedTerm(
    {
      start: new Date(r.startTime),
      end: new Date(r.endTime),
      createdWith: r.createdWith ?? "end_time",
      period: r.period,
    },
    at,
  );
  if (!term) return r;
  return {
    ...r,
    startTime: term.start.toISOString(),
    endTime: term.end.toISOString(),
    period: term.period,
    createdWith: term.createdWith,
    priceMinor: termPriceMinor(r, r.amount, term.start, term.end).toString(),
  };
}

/**
 * The price of a term: per unit and hour, exact to the second and rounded once; depletables per
 * unit consumed; CaaS clouds nothing up front (they are billed for the time they run).
 */
export function termPriceMinor(
  p: { kind: ProductKind; unitPriceMinor: number },
  amount: number,
  start: Date,
  end: Date | null,
): bigint {
  if (p.kind === "depletable") return BigInt(amount) * BigInt(p.unitPriceMinor);
  if (p.kind === "caas" || end === null) return 0n;
  const term: RunInterval = { start: start.getTime(), end: end.getTime(), quantity: amount };
  return chargeFor([term], BigInt(p.unitPriceMinor), end.getTime()).chargeMinor;
}

export const money = (minor: bigint | string, code: string) => formatMinor(BigInt(minor), currency(code));

/**
 * The terms after it a row of a plain subscription list names in `descendants`: a page of a long
 * chain's terms named the rest of the chain in every row, rows times terms (a page of 50 terms of
 * a 1,500-term chain, 2.9 MB). A single read and a grouped list name them all.
 */
export const MAX_LISTED_DESCENDANTS = 100;

export interface SubscriptionWire {
  id: string;
  uuid: string;
  resource: string;
  product: string;
  customer: string;
  amount: number;
  start_time: string;
  end_time: string | null;
  period: string | null;
  status: Status;
  auto_renew: boolean;
  price: string;
  currency: string;
  remaining: number | null;
  descendants: string[];
  subscribed_object: null;
  run_state: "running" | "stopped" | null;
  /** What the vendor reported, for a syndicated product; null for the others. */
  deployment_status: DeploymentStatus | null;
  syndicated_endpoints: string[] | null;
  end_user_instructions: string | null;
  order: string;
  extends: string | null;
  ended_at: string | null;
  end_reason: EndReason | null;
  renewal_error: string | null;
  created_at: string;
}

export function toWire(r: SubscriptionRecord, status: Status, descendants: string[]): SubscriptionWire {
  return {
    id: r.id,
    uuid: r.id,
    resource: r.product,
    product: r.product,
    customer: r.customerId,
    amount: r.amount,
    start_time: r.startTime,
    end_time: r.endTime,
    period: r.period,
    status,
    auto_renew: r.autoRenew,
    price: money(r.priceMinor, r.currency),
    currency: r.currency,
    remaining: r.remaining,
    descendants,
    subscribed_object: null,
    run_state: r.kind === "caas" ? (isRunning(r.runs) ? "running" : "stopped") : null,
    ...vendorReport(r),
    order: r.orderId,
    extends: r.previousId,
    ended_at: r.endedAt,
    end_reason: r.endReason,
    renewal_error: r.renewalError ?? null,
    created_at: r.createdAt,
  };
}

/** A syndicated subscription's vendor report as the partner reads it; nulls for a built-in product. */
function vendorReport(r: SubscriptionRecord) {
  const syndicated = r.delivery === "syndicated";
  return {
    deployment_status: syndicated ? r.deploymentStatus : null,
    syndicated_endpoints: syndicated ? r.syndicatedEndpoints : null,
    end_user_instructions: syndicated ? r.endUserInstructions : null,
  };
}
