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

/**
 * A line of metered usage: one piece of a CaaS cloud's running time (an interval cut at each UTC
 * month boundary), named by the instant it starts. Pieces of one subscription never overlap and an
 * empty one writes no line, so no two lines share a start.
 */
export const usageChargeKey = (subscriptionId: string, startMs: number) =>
  `usage:${subscriptionId}:${startMs}`;

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

/**
 * `YYYY-MM` (month 01 to 12), or null for anything else, and for 9999-12, whose end (year 10000)
 * no RFC 3339 timestamp can write.
 */
export function parseMonth(text: string): Month | null {
  const match = MONTH.exec(text);
  if (!match) return null;
  const year = Number(match[1]);
  const month = Number(match[2]);
  if (year === 9999 && month === 12) return null;
  // setUTCFullYear, not Date.UTC: Date.UTC reads years 0 to 99 as 1900 to 1999.
  const start = new Date(0);
  start.setUTCFullYear(year, month - 1, 1);
  const end = new Date(0);
  end.setUTCFullYear(year, month, 1);
  return { name: text, start, end };
}

/** The month that contains `instant`. */
export function monthOf(instant: Date): Month {
  if (Number.isNaN(instant.getTime())) throw new RangeError("not an instant");
  const start = new Date(0);
  start.setUTCFullYear(instant.getUTCFullYear(), instant.getUTCMonth(), 1);
  const end = new Date(0);
  end.setUTCFullYear(instant.getUTCFullYear(), instant.getUTCMonth() + 1, 1);
  return { name: monthName(start), start, end };
}

/** The month before `month`. */
export const previousMonth = (month: Month): Month => monthOf(new Date(month.start.getTime() - 1));

// `YYYY-MM` for years 0 to 9999, the only ones a statement names; toISOString would give ±YYYYYY.
function monthName(start: Date): string {
  const year = String(start.getUTCFullYear()).padStart(4, "0");
  return `${year}-${String(start.getUTCMonth() + 1).padStart(2, "0")}`;
}

/**
 * A month is closed once it is over and the month-closing cron run for it (or a later month) has
 * recorded that every cloud running into it was billed up to its end (`closedThrough`: the latest
 * month so recorded). Term lines are stamped with the month D1 writes them in, and a usage line
 * for a month already recorded goes on the month it is written in, so a closed month never gains
 * a line.
 */
export const isClosed = (month: Month, now: Date, closedThrough: string | null) =>
  now.getTime() >= month.end.getTime() && closedThrough !== null && closedThrough >= month.name;
