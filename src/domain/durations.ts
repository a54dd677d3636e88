/**
 * Resolves the `start_time` / `end_time` / `period` combination of a purchase or an extension
 * into the interval actually bought, with the spec's rounding to noon UTC.
 */

import {
  addPeriod,
  formatPeriod,
  MAX_AMOUNT,
  MAX_PERIOD_YEARS,
  type Period,
  parsePeriod,
  readPeriod,
  subtractPeriod,
} from "./period";

export interface DurationInput {
  start_time?: Date;
  end_time?: Date;
  period?: string;
}

export type DurationError =
  | { code: "ambiguous"; fields: string[]; message: string }
  | { code: "not_specific_enough"; fields: string[]; message: string }
  | { code: "invalid_period"; fields: ["period"]; message: string }
  | { code: "period_too_long"; fields: ["period"]; message: string }
  | { code: "end_not_after_start"; fields: string[]; message: string }
  | { code: "end_too_late"; fields: string[]; message: string };

/** How the length was chosen; it decides how a later extension repeats it. */
export type CreatedWith = "period" | "end_time";

export interface ResolvedDuration {
  start: Date;
  end: Date;
  createdWith: CreatedWith;
  /** Canonical period text when a period was used, so extensions re-parse the same thing. */
  period: string | null;
}

export type DurationResult = { ok: true; value: ResolvedDuration } | { ok: false; error: DurationError };

export interface ExtendBase {
  start: Date;
  end: Date;
  createdWith: CreatedWith;
  period: string | null;
}

/**
 * The latest end a term can have: the last noon whose timestamp RFC 3339 (and the `date-time` of
 * the API's documents) can write. Past it, years take six digits and a sign.
 */
export const LATEST_END = new Date("9999-12-31T12:00:00.000Z");

const DAY_MS = 86_400_000;
const NOON_MS = 43_200_000;

/** The latest noon UTC at or before `d`. */
export function previousNoon(d: Date): Date {
  const t = d.getTime();
  const shifted = t - NOON_MS;
  return new Date(shifted - mod(shifted, DAY_MS) + NOON_MS);
}

/** The earliest noon UTC at or after `d`. */
export function roundEndToNoon(d: Date): Date {
  const before = previousNoon(d);
  return before.getTime() === d.getTime() ? before : new Date(before.getTime() + DAY_MS);
}

/** Purchases for now start now; purchases for later start at the noon before the requested time. */
export function roundStart(requested: Date, now: Date): Date {
  const noon = previousNoon(requested);
  return noon.getTime() > now.getTime() ? noon : new Date(now.getTime());
}

function mod(a: number, n: number): number {
  return ((a % n) + n) % n;
}

const fail = (error: DurationError): DurationResult => ({ ok: false, error });

/** `text` as a period, or why it is none: not understood, or longer than a term may be. */
function periodOf(text: string): { ok: true; period: Period } | { ok: false; error: DurationError } {
  const reading = readPeriod(text);
  if (reading.ok) return reading;
  if (reading.tooLong) {
    return {
      ok: false,
      error: {
        code: "period_too_long",
        fields: ["period"],
        message: `The period is too long: a term lasts at most ${MAX_PERIOD_YEARS} years, and at most ${MAX_AMOUNT} of any one unit.`,
      },
    };
  }
  return {
    ok: false,
    error: {
      code: "invalid_period",
      fields: ["period"],
      message: "Cannot understand the period; use e.g. '2 months 1 week'.",
    },
  };
}

function endNotAfterStart(start: Date, end: Date, fields: string[]): DurationResult {
  return fail({
    code: "end_not_after_start",
    fields,
    message: `The subscription would end (${end.toISOString()}) before it starts (${start.toISOString()}).`,
  });
}

function endTooLate(fields: string[]): DurationResult {
  return fail({
    code: "end_too_late",
    fields,
    message: `The subscription would end after ${LATEST_END.toISOString()}, the latest end a term can have.`,
  });
}

function interval(
  start: Date,
  end: Date,
  createdWith: CreatedWith,
  period: Period | null,
  fields: string[],
): DurationResult {
  if (end.getTime() <= start.getTime()) return endNotAfterStart(start, end, fields);
  if (!(end.getTime() <= LATEST_END.getTime())) return endTooLate(fields);
  return { ok: true, value: { start, end, createdWith, period: period ? formatPeriod(period) : null } };
}

/**
 * Applies the spec's truth table. A start_time in the past is now: the spec rounds the start to
 * the later of now and its previous noon, so it starts now, and a period counts from then (the
 * customer gets the length asked for, not what is left of it).
 *
 * The requested end must also be after both the requested start and `now`, checked before
 * rounding: both ends round outwards, so an end_time an hour before start_time, or one that
 * already passed this morning, would otherwise still buy a few hours up to the next noon.
 */
export function resolveDuration(input: DurationInput, now: Date): DurationResult {
  const { end_time, period: periodText } = input;
  const start_time =
    input.start_time === undefined || input.start_time.getTime() >= now.getTime() ? input.start_time : now;
  const given = (["start_time", "end_time", "period"] as const).filter((f) => input[f] !== undefined);

  if (start_time !== undefined && end_time !== undefined && periodText !== undefined) {
    return fail({
      code: "ambiguous",
      fields: ["start_time", "end_time", "period"],
      message: "Ambiguous: give at most two of start_time, end_time and period.",
    });
  }
  let period: Period | null = null;
  if (periodText !== undefined) {
    const read = periodOf(periodText);
    if (!read.ok) return fail(read.error);
    period = read.period;
  }

  let rawStart: Date;
  let rawEnd: Date;
  if (end_time !== undefined) {
    rawEnd = end_time;
    rawStart = start_time ?? (period ? subtractPeriod(end_time, period) : now);
  } else if (period) {
    rawStart = start_time ?? now;
    rawEnd = addPeriod(rawStart, period);
  } else {
    return fail({
      code: "not_specific_enough",
      fields: ["end_time", "period"],
      message: "Not specific enough: give an end_time or a period to say how long the subscription lasts.",
    });
  }

  const earliestStart = rawStart.getTime() > now.getTime() ? rawStart : now;
  if (rawEnd.getTime() <= earliestStart.getTime()) return endNotAfterStart(earliestStart, rawEnd, given);
  const createdWith: CreatedWith = period ? "period" : "end_time";
  return interval(roundStart(rawStart, now), roundEndToNoon(rawEnd), createdWith, period, given);
}

/**
 * An extension is a new subscription that starts where the chain ends, so the chain stays
 * contiguous; a chain that has already lapsed continues from `now` instead (a start is never in the
 * past: "the maximum between the current time and the previous noon"), so no term is bought that
 * is over before it is bought. A renewal passes the chain's end as `now`: it continues the chain
 * even when it runs late. Without an explicit length it repeats the last one: the interval for
 * end_time subscriptions, in whole days (`wholeDays`), the period re-read from the new start for
 * period ones; the end rounded up to noon.
 */
export function resolveExtension(
  last: ExtendBase,
  input: { end_time?: Date; period?: string },
  now: Date,
): DurationResult {
  const start = new Date(Math.max(last.end.getTime(), now.getTime()));
  const { end_time, period: periodText } = input;
  if (end_time !== undefined && periodText !== undefined) {
    return fail({
      code: "ambiguous",
      fields: ["end_time", "period"],
      message: "Ambiguous: give an end_time or a period for the extension, not both.",
    });
  }
  if (periodText !== undefined) {
    const read = periodOf(periodText);
    if (!read.ok) return fail(read.error);
    return interval(start, roundEndToNoon(addPeriod(start, read.period)), "period", read.period, ["period"]);
  }
  if (end_time !== undefined) {
    // Checked unrounded for the same reason as in resolveDuration.
    if (end_time.getTime() <= start.getTime()) return endNotAfterStart(start, end_time, ["end_time"]);
    return interval(start, roundEndToNoon(end_time), "end_time", null, ["end_time"]);
  }

  const repeated = repeatFrom(last, start);
  if (!(repeated.end.getTime() <= LATEST_END.getTime())) return endTooLate([]);
  return { ok: true, value: repeated };
}

/**
 * `term` again from `start`, as long as it was bought for: the period re-read from the new start
 * for a period term, the interval in whole days for an end_time one, the end rounded up to noon. A
 * stored period that no longer parses falls back to the interval, recorded as such.
 */
function repeatFrom(term: ExtendBase, start: Date): ResolvedDuration {
  const period = term.createdWith === "period" && term.period !== null ? parsePeriod(term.period) : null;
  const end = period
    ? addPeriod(start, period)
    : new Date(start.getTime() + wholeDays(term.end.getTime() - term.start.getTime()));
  return {
    start,
    end: roundEndToNoon(end),
    createdWith: period ? "period" : "end_time",
    period: period ? formatPeriod(period) : null,
  };
}

/**
 * An interval of `ms` as the nearest whole number of days (half a day down), at least one. A term
 * bought for now starts at the hour it was bought and ends at a noon: its days and a fraction.
 * Repeated from the noon it ended at and rounded up, one bought on 1 February at 09:00 to 1 March
 * (28 days and 3 hours) would be extended 29 days, and each renewal after it too, where the spec
 * says 28 ("extended for 28 days"); its nearest whole days are its days by the calendar, at any hour.
 */
function wholeDays(ms: number): number {
  return Math.max(1, Math.floor((ms + DAY_MS / 2 - 1) / DAY_MS)) * DAY_MS;
}

/**
 * The longest term `bought` can become once its vendor deploys it (`deployedTerm`), whenever that
 * is: a period read again from any start (a month of 31 days, a year of 366), an interval as long
 * as bought, and a day more for the end's rounding to noon; never shorter than the term as bought
 * (its start may have been rounded back to the noon before). A purchase is checked against its
 * price, which its deployment may raise but never past.
 */
export function longestDeployed(bought: ResolvedDuration): ResolvedDuration {
  const asBought = bought.end.getTime() - bought.start.getTime();
  const period =
    bought.createdWith === "period" && bought.period !== null ? parsePeriod(bought.period) : null;
  const length = period
    ? ((period.years * 366 + period.months * 31 + period.weeks * 7 + period.days) * 24 + period.hours) *
      3_600_000
    : asBought;
  const end = Math.min(bought.start.getTime() + Math.max(asBought, length + DAY_MS), LATEST_END.getTime());
  return { ...bought, end: new Date(end) };
}

/**
 * The term of a syndicated purchase once its vendor reports it deployed at `at`: a term due to
 * start by then starts then instead (bought for now, it starts now), as long as it was bought for,
 * so the customer pays nothing for the days it waited; a term that starts later stays as it is
 * (null). A period is read again from `at`. An end_time term's interval, whose end was rounded up
 * to noon when it was bought, is moved by the delay and ends at the noon at or before its moved
 * end: rounded up again, a term deployed minutes late would last, and be charged, up to a day more
 * than was bought. Should that noon not be after `at`, it ends at the next one, as a purchase
 * would. No term ends after `LATEST_END`, which the purchase was checked against.
 */
export function deployedTerm(term: ExtendBase, at: Date): ResolvedDuration | null {
  if (term.start.getTime() > at.getTime()) return null;
  const moved = repeatFrom(term, new Date(at.getTime()));
  let end = moved.end;
  if (moved.createdWith === "end_time") {
    const shifted = new Date(term.end.getTime() + at.getTime() - term.start.getTime());
    const before = previousNoon(shifted);
    end = before.getTime() > at.getTime() ? before : roundEndToNoon(shifted);
  }
  return { ...moved, end: end.getTime() > LATEST_END.getTime() ? LATEST_END : end };
}
