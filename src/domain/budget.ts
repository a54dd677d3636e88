/**
 * What one invocation of the Worker may make (README, "Bounds"): D1 queries (1,000 on Workers
 * Paid, every statement of a batch counting as one; past it each query fails) and subrequests
 * (10,000: D1 queries, object calls and queue sends alike).
 */
export const INVOCATION_QUERIES = 1_000;
export const INVOCATION_SUBREQUESTS = 10_000;

/** What an invocation made so far (or may make): D1 queries, and subrequests of every kind, those included. */
export interface Spending {
  queries: number;
  subrequests: number;
}

/** Whether a step may begin one more unit of its work (one undo, one give-up) within its share. */
export interface Allowance {
  readonly left: boolean;
}

/** `fraction` of an invocation's D1 queries and of its subrequests: a step's share. */
export function shareOfInvocation(fraction: number): Spending {
  return { queries: INVOCATION_QUERIES * fraction, subrequests: INVOCATION_SUBREQUESTS * fraction };
}

/** No share: the step's own bound is all that bounds it. */
export const UNBOUNDED: Allowance = { left: true };

/**
 * A step's `share` of the invocation whose spending so far is `spent` (read live): there is some
 * left while what was spent since now is under both of its figures. A unit begun within it may go
 * past it by its own cost; the shares leave room for that.
 */
export function allowance(spent: Readonly<Spending>, share: Spending): Allowance {
  const from = { ...spent };
  return {
    get left() {
      return (
        spent.queries - from.queries < share.queries &&
        spent.subrequests - from.subrequests < share.subrequests
      );
    },
  };
}
