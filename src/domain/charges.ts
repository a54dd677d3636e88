/**
 * The charges ledger's rules, free of I/O: what a line is called (its key, which is also what
 * makes it exist once) and which month a statement covers.
 */

/**
 * What moved the money: a prepaid term bought (a first purchase, an extension, a renewal), the
 * undoing of such a term after its line was written, or metered usage.
 */
export const CHARGE_KINDS = ["purchase", "extension", "renewal", "reversal", "usage"] as const;
export type ChargeKind = (typeof CHARGE_KINDS)[number];

/** The kinds a purchase writes: each term, however it was bought, is its own subscription. */
export type TermChargeKind = Extract<ChargeKind, "purchase" | "extension" | "renewal">;

/**
 * The line of a prepaid term. Every term is its own subscription (an extension or a renewal is a
 * new subscription linked to the one before), so the subscription names the line.
 */
export const termChargeKey = (subscriptionId: string) => `purchase:${subscriptionId}`;

/** The line that undoes a term's line when its purchase is undone after the line was written. */
export const reversalChargeKey = (subscriptionId: string) => `reversal:${subscriptionId}`;

/** A calendar month in UTC, as statements name it (`2027-03`). */
export interface Month {
  /** `YYYY-MM`. */
  name: string;
  /** The first instant of the month. */
  start: Date;
  /** The first instant of the next month: the month is over (closed) from then on. */
  end: Date;
}

const MONTH = /^(\d{4})-(0[1-9]|1[0-2])$/;

/** `YYYY-MM` (month 01 to 12), or null for anything else. */
export function parseMonth(text: string): Month | null {
  const match = MONTH.exec(text);
  if (!match) return null;
  const year = Number(match[1]);
  const month = Number(match[2]);
  // setUTCFullYear, not Date.UTC: Date.UTC reads years 0 to 99 as 1900 to 1999.
  const start = new Date(0);
  start.setUTCFullYear(year, month - 1, 1);
  const end = new Date(0);
  end.setUTCFullYear(year, month, 1);
  return { name: text, start, end };
}

/** A month is closed once it is over: no line can be written into it any more. */
export const isClosed = (month: Month, now: Date) => now.getTime() >= month.end.getTime();
