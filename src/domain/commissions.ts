/**
 * A commission's life as its home ledger records it. `issuing`, `failing`, `accepting` and
 * `rejecting` are the steps that span several holders' ledgers: recorded before the other ledgers
 * are touched, so whoever finds one (the next request, the ledger's alarm) finishes it. `failing`
 * is an issue being rolled back: whoever moves `issuing` on first decides how it ends.
 */
export type CommissionState =
  | "issuing"
  | "failing"
  | "pending"
  | "accepting"
  | "rejecting"
  | "accepted"
  | "rejected"
  | "failed";

export type Decision = "accept" | "reject";
export const RESOLVING = { accept: "accepting", reject: "rejecting" } as const;
export const RESOLVED = { accept: "accepted", reject: "rejected" } as const;

/** The steps that span several holders' ledgers. */
type Step = "issuing" | "failing" | "accepting" | "rejecting";

const FINISHED_AS: Readonly<Record<Step, { decision: Decision; final: CommissionState }>> = {
  issuing: { decision: "reject", final: "failed" },
  failing: { decision: "reject", final: "failed" },
  accepting: { decision: "accept", final: "accepted" },
  rejecting: { decision: "reject", final: "rejected" },
};

/**
 * How a step whose request died is finished (by its home's alarm), null for a state that is no
 * step: an issue never completed is rolled back, as its caller never learned the serial; a
 * decided resolution is completed.
 */
export const stepFinish = (state: CommissionState): { decision: Decision; final: CommissionState } | null =>
  Object.hasOwn(FINISHED_AS, state) ? FINISHED_AS[state as Step] : null;

/** The longest commission name, in characters: what Astakos keeps (`Commission.name`). */
export const MAX_COMMISSION_NAME = 4096;

/** Serials one `commissions/action` request resolves; those past it are answered as not resolved. */
export const MAX_RESOLVE_SERIALS = 1000;

/** Serials one `commissions/action` request may list to accept, and as many to reject (a body bound). */
export const MAX_LISTED_SERIALS = 100_000;

/** How many serials a ledger takes at a time. */
export const SERIAL_BLOCK = 1024;

export const serialIn = (block: number, offset: number): number => block * SERIAL_BLOCK + offset;
export const blockOf = (serial: number): number => Math.floor(serial / SERIAL_BLOCK);

/**
 * The ledger that keeps a commission (its record, its serial, its decision): its first holder's
 * in the fixed order, so the common commission on one holder costs one ledger call. A commission
 * that holds nothing is kept by a ledger of its issuer's.
 */
export function homeOf(holders: readonly string[], serviceId: string | null): string {
  return [...holders].sort()[0] ?? `service:${serviceId ?? "stratus"}`;
}
