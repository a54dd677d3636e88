/**
 * The free-form `period` grammar of subscriptions ('2 months 1 week', '1 year and 6 months') and
 * calendar arithmetic with it, in UTC.
 *
 * Grammar: terms of `<amount> <unit>` separated by whitespace, commas and/or "and", in any order.
 * The amount is a positive integer (or "a"/"an" for one); the unit is matched case-insensitively
 * against the table below. "m" is deliberately absent: it could mean minutes or months.
 */

export interface Period {
  years: number;
  months: number;
  weeks: number;
  days: number;
  hours: number;
}

type Unit = keyof Period;

const UNIT_ORDER: readonly Unit[] = ["years", "months", "weeks", "days", "hours"];

const UNIT_ALIASES: Record<string, Unit> = {
  y: "years",
  yr: "years",
  yrs: "years",
  year: "years",
  years: "years",
  mo: "months",
  mos: "months",
  mon: "months",
  mons: "months",
  month: "months",
  months: "months",
  w: "weeks",
  wk: "weeks",
  wks: "weeks",
  week: "weeks",
  weeks: "weeks",
  d: "days",
  day: "days",
  days: "days",
  h: "hours",
  hr: "hours",
  hrs: "hours",
  hour: "hours",
  hours: "hours",
};

const SINGULAR: Record<Unit, string> = {
  years: "year",
  months: "month",
  weeks: "week",
  days: "day",
  hours: "hour",
};

/** Keeps every intermediate sum well inside the safe-integer range. */
export const MAX_AMOUNT = 100_000;
/** The longest period, in years (as months, weeks, days or hours: its mean Gregorian length). */
export const MAX_PERIOD_YEARS = 100;

// Lengths are compared in units of 1/4800 hour so that the Gregorian mean month (146097/4800 days,
// a 400-year cycle spread over its 4800 months) is an integer and the bound needs no floats.
const SCALE_HOUR = 4800;
const SCALE_DAY = 24 * SCALE_HOUR;
const SCALE_MONTH = 146_097 * 24;
/** 100 mean Gregorian years: '100 years', '1200 months' and '5217 weeks' fit, '5218 weeks' does not. */
const MAX_SCALED_LENGTH = MAX_PERIOD_YEARS * 12 * SCALE_MONTH;

// A bare "a"/"an" needs whitespace before its unit, or "amonth" would read as "a month".
const TERM = /(?:(\d+)\s*|(an?)\s+)([a-z]+)/y;
const SEPARATOR = /\s*,\s*(?:and\s+)?|\s+and\s+|\s+/y;

export function parsePeriod(text: string): Period | null {
  const reading = readPeriod(text);
  return reading.ok ? reading.period : null;
}

/**
 * `text` read as a period, or why it is none: not in the grammar, or `tooLong`, a period the
 * grammar reads but past `MAX_PERIOD_YEARS` or `MAX_AMOUNT`, so its refusal can name the bound
 * rather than say the text was not understood.
 */
export function readPeriod(text: string): { ok: true; period: Period } | { ok: false; tooLong: boolean } {
  const unreadable = { ok: false, tooLong: false } as const;
  const source = text.trim().toLowerCase();
  const period: Period = { years: 0, months: 0, weeks: 0, days: 0, hours: 0 };
  const seen = new Set<Unit>();
  let overAmount = false;
  let index = 0;
  while (true) {
    TERM.lastIndex = index;
    const term = TERM.exec(source);
    if (!term) return unreadable;
    const [, digits, article, unitText] = term;
    const amount = digits !== undefined ? Number(digits) : article !== undefined ? 1 : Number.NaN;
    const unit = unitText !== undefined ? UNIT_ALIASES[unitText] : undefined;
    if (unit === undefined || seen.has(unit)) return unreadable;
    if (!Number.isInteger(amount) || amount < 1) return unreadable;
    overAmount ||= amount > MAX_AMOUNT;
    seen.add(unit);
    period[unit] = amount;
    index = TERM.lastIndex;
    if (index === source.length) break;
    SEPARATOR.lastIndex = index;
    if (!SEPARATOR.exec(source)) return unreadable;
    index = SEPARATOR.lastIndex;
  }
  // Past MAX_AMOUNT the sum may be inexact, but it is compared only when every amount is within it.
  return overAmount || scaledLength(period) > MAX_SCALED_LENGTH
    ? { ok: false, tooLong: true }
    : { ok: true, period };
}

function scaledLength(p: Period): number {
  return (p.years * 12 + p.months) * SCALE_MONTH + (p.weeks * 7 + p.days) * SCALE_DAY + p.hours * SCALE_HOUR;
}

/** Empty for the zero period, which the grammar cannot express. */
export function formatPeriod(p: Period): string {
  return UNIT_ORDER.filter((unit) => p[unit] !== 0)
    .map((unit) => `${p[unit]} ${p[unit] === 1 ? SINGULAR[unit] : unit}`)
    .join(" ");
}

export function daysInMonth(year: number, monthIndex: number): number {
  const d = new Date(0);
  d.setUTCFullYear(year, monthIndex + 1, 0);
  return d.getUTCDate();
}

// Years and months move together before clamping, so 29 Feb + '1 year 1 month' is 29 March,
// not 28 March as clamping after the year alone would give.
function shiftMonths(d: Date, months: number): Date {
  const total = d.getUTCFullYear() * 12 + d.getUTCMonth() + months;
  const year = Math.floor(total / 12);
  const monthIndex = total - year * 12;
  const out = new Date(d.getTime());
  // setUTCFullYear, unlike Date.UTC, does not map years 0-99 onto 1900-1999.
  out.setUTCFullYear(year, monthIndex, Math.min(d.getUTCDate(), daysInMonth(year, monthIndex)));
  return out;
}

function shiftDays(d: Date, days: number): Date {
  const out = new Date(d.getTime());
  out.setUTCDate(out.getUTCDate() + days);
  return out;
}

const HOUR_MS = 3_600_000;

/** Calendar units first (clamping to the end of a shorter month), then weeks and days, then hours. */
export function addPeriod(start: Date, p: Period): Date {
  const calendar = shiftDays(shiftMonths(start, p.years * 12 + p.months), p.weeks * 7 + p.days);
  return new Date(calendar.getTime() + p.hours * HOUR_MS);
}

/**
 * The mirror of addPeriod, undoing its steps in reverse order, so that subtracting from an end
 * produced by addPeriod lands back on the start whenever no clamping happened.
 */
export function subtractPeriod(end: Date, p: Period): Date {
  const beforeHours = new Date(end.getTime() - p.hours * HOUR_MS);
  return shiftMonths(shiftDays(beforeHours, -(p.weeks * 7 + p.days)), -(p.years * 12 + p.months));
}
