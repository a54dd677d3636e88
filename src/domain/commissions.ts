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
