/**
 * The one reading of a time a client sends (`start_time`, `end_time`, list filters): ISO 8601 as
 * the subscriptions spec reads it, where "all times are in UTC". A date alone is its midnight UTC,
 * a date-time without a zone is UTC, and a zone (`Z`, `±hh:mm`, `±hhmm`, `±hh`) is honoured.
 */
import { daysInMonth } from "./period";

const INSTANT =
  /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?(?:([Zz])|([+-])(\d{2})(?::?(\d{2}))?)?)?$/;

/**
 * The instant `text` names, or null if it is not one (a field out of range is not one either).
 * A fraction past the millisecond is cut, or with `roundUp` read as the next millisecond: an end
 * rounds up to noon, and one a few microseconds past noon must round to the next noon as the
 * instant it names does. Noons are whole milliseconds, so cutting a start and rounding an end up
 * gives each the noon its exact instant would.
 */
export function parseInstant(text: string, roundUp = false): Date | null {
  const m = INSTANT.exec(text);
  if (!m) return null;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map((part) => Number(part ?? 0)) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const fraction = (m[7] ?? "").padEnd(3, "0");
  const millis = Number(fraction.slice(0, 3)) + (roundUp && /[1-9]/.test(fraction.slice(3)) ? 1 : 0);
  const offsetHours = Number(m[10] ?? 0);
  const offsetMinutes = Number(m[11] ?? 0);
  if (year < 1 || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month - 1)) return null;
  if (hour > 23 || minute > 59 || second > 59 || offsetHours > 23 || offsetMinutes > 59) return null;
  const offset = (m[9] === "-" ? -1 : 1) * (offsetHours * 60 + offsetMinutes);
  const d = new Date(0);
  // setUTCFullYear, unlike Date.UTC, does not map years 0-99 onto 1900-1999.
  d.setUTCFullYear(year, month - 1, day);
  d.setUTCHours(hour, minute - offset, second, millis);
  // The end of 9999 with a negative zone is in year 10000, which ISO 8601 text (and so every
  // comparison of stored times as text) writes as `+010000-…`, sorting before every other year.
  return d.getUTCFullYear() > 9999 ? null : d;
}
