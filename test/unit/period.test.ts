import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  addPeriod,
  formatPeriod,
  type Period,
  parsePeriod,
  readPeriod,
  subtractPeriod,
} from "../../src/domain/period";

const p = (parts: Partial<Period>): Period => ({
  years: 0,
  months: 0,
  weeks: 0,
  days: 0,
  hours: 0,
  ...parts,
});
const d = (iso: string): Date => new Date(iso);

// Bounded well inside the 100-year limit, and never the zero period.
const periodArb: fc.Arbitrary<Period> = fc
  .record({
    years: fc.integer({ min: 0, max: 20 }),
    months: fc.integer({ min: 0, max: 100 }),
    weeks: fc.integer({ min: 0, max: 200 }),
    days: fc.integer({ min: 0, max: 500 }),
    hours: fc.integer({ min: 0, max: 5000 }),
  })
  .filter((x) => x.years + x.months + x.weeks + x.days + x.hours > 0);

const dateArb = fc.date({
  min: d("1970-01-01T00:00:00.000Z"),
  max: d("2200-12-31T23:59:59.999Z"),
  noInvalidDate: true,
});

describe("parsePeriod", () => {
  it.each([
    ["2 months 1 week", p({ months: 2, weeks: 1 })],
    ["1 year", p({ years: 1 })],
    ["3 days 4 hours", p({ days: 3, hours: 4 })],
    ["1 month, 2 days", p({ months: 1, days: 2 })],
    ["1 year and 6 months", p({ years: 1, months: 6 })],
    ["1 year, 2 months and 3 days", p({ years: 1, months: 2, days: 3 })],
    ["1 year, and 2 months", p({ years: 1, months: 2 })],
    ["a month", p({ months: 1 })],
    ["an hour", p({ hours: 1 })],
    ["A Year And A Day", p({ years: 1, days: 1 })],
    ["2 MONTHS 1 Week", p({ months: 2, weeks: 1 })],
    ["  2   months\t1 week  ", p({ months: 2, weeks: 1 })],
    ["1 week 2 months", p({ months: 2, weeks: 1 })],
    ["1 days", p({ days: 1 })],
    ["2 day", p({ days: 2 })],
    ["2months", p({ months: 2 })],
    ["1y 2mo 3w 4d 5h", p({ years: 1, months: 2, weeks: 3, days: 4, hours: 5 })],
    ["1 yr 2 mon 3 wk 4 d 5 hr", p({ years: 1, months: 2, weeks: 3, days: 4, hours: 5 })],
    ["2 yrs 2 mons 2 wks 2 hrs", p({ years: 2, months: 2, weeks: 2, hours: 2 })],
    ["100 years", p({ years: 100 })],
    ["1200 months", p({ months: 1200 })],
    ["5217 weeks", p({ weeks: 5217 })],
    ["36524 days", p({ days: 36524 })],
    ["100000 hours", p({ hours: 100000 })],
    // 36524 days and 6 hours is exactly 1200 mean Gregorian months (876582 hours): the bound itself.
    ["36524 days 6 hours", p({ days: 36524, hours: 6 })],
  ])("parses %j", (text, expected) => {
    expect(parsePeriod(text)).toEqual(expected);
  });

  it.each([
    ["empty", ""],
    ["blank", "   "],
    ["a unit without amount", "month"],
    ["an amount without unit", "2"],
    ["zero", "0 days"],
    ["zero next to a valid term", "1 month 0 days"],
    ["a negative", "-1 day"],
    ["a decimal", "1.5 months"],
    ["an exponent", "1e3 days"],
    ["an unsupported unit", "2 minutes"],
    ["the ambiguous 'm'", "2 m"],
    ["words", "forever"],
    ["a repeated unit", "1 month 2 months"],
    ["a repeated unit under another alias", "1 mo 1 month"],
    ["a trailing comma", "1 month,"],
    ["a leading comma", ", 1 month"],
    ["a dangling 'and'", "1 month and"],
    ["a leading 'and'", "and 1 month"],
    ["a term glued to the next", "2 months1 week"],
    ["a glued article", "amonth"],
    ["an amount past the bound", "100001 hours"],
    ["a huge amount", "99999999999999999999 days"],
    ["more than 100 years", "101 years"],
    ["more than 100 years in months", "1201 months"],
    ["more than 100 years in weeks", "5218 weeks"],
    ["100 years and a day", "100 years 1 day"],
    ["100 years and an hour", "100 years 1 hour"],
    ["an hour past the bound", "36524 days 7 hours"],
    ["trailing junk", "1 month please"],
  ])("rejects %s", (_label, text) => {
    expect(parsePeriod(text)).toBeNull();
  });
});

describe("readPeriod", () => {
  it.each([
    ["101 years", true],
    ["5218 weeks", true],
    ["100001 hours", true],
    ["99999999999999999999 days", true],
    ["1 month, and 101 years", true],
    ["forever", false],
    ["0 days", false],
    ["101 years please", false],
    ["101 years 1 year", false],
  ])("tells %j past a bound (%s) from text it cannot read", (text, tooLong) => {
    expect(readPeriod(text)).toEqual({ ok: false, tooLong });
  });
});

describe("formatPeriod", () => {
  it("writes units largest first, plural-aware, omitting zeros", () => {
    expect(formatPeriod(p({ months: 2, weeks: 1 }))).toBe("2 months 1 week");
    expect(formatPeriod(p({ years: 1, months: 1, weeks: 1, days: 1, hours: 1 }))).toBe(
      "1 year 1 month 1 week 1 day 1 hour",
    );
    expect(formatPeriod(p({ years: 3, hours: 12 }))).toBe("3 years 12 hours");
  });

  it("canonicalises free-form input", () => {
    const parsed = parsePeriod("1 week, and A MONTH");
    expect(parsed && formatPeriod(parsed)).toBe("1 month 1 week");
  });

  it("is empty for the zero period", () => {
    expect(formatPeriod(p({}))).toBe("");
  });

  it("round-trips through parsePeriod", () => {
    fc.assert(
      fc.property(periodArb, (period) => {
        expect(parsePeriod(formatPeriod(period))).toEqual(period);
      }),
    );
  });
});

describe("addPeriod", () => {
  it.each([
    [
      "31 Jan + 1 month clamps to 28 Feb",
      "2023-01-31T12:00:00.000Z",
      p({ months: 1 }),
      "2023-02-28T12:00:00.000Z",
    ],
    [
      "31 Jan + 1 month in a leap year",
      "2024-01-31T12:00:00.000Z",
      p({ months: 1 }),
      "2024-02-29T12:00:00.000Z",
    ],
    [
      "31 Mar + 1 month clamps to 30 Apr",
      "2025-03-31T12:00:00.000Z",
      p({ months: 1 }),
      "2025-04-30T12:00:00.000Z",
    ],
    ["leap day + 1 year", "2024-02-29T12:00:00.000Z", p({ years: 1 }), "2025-02-28T12:00:00.000Z"],
    ["leap day + 4 years", "2024-02-29T12:00:00.000Z", p({ years: 4 }), "2028-02-29T12:00:00.000Z"],
    [
      "leap day + 1 year 1 month",
      "2024-02-29T12:00:00.000Z",
      p({ years: 1, months: 1 }),
      "2025-03-29T12:00:00.000Z",
    ],
    ["months across a year end", "2024-11-15T12:00:00.000Z", p({ months: 3 }), "2025-02-15T12:00:00.000Z"],
    ["2 months 1 week", "2025-01-01T12:00:00.000Z", p({ months: 2, weeks: 1 }), "2025-03-08T12:00:00.000Z"],
    [
      "1 month then days past a clamp",
      "2023-01-31T12:00:00.000Z",
      p({ months: 1, days: 1 }),
      "2023-03-01T12:00:00.000Z",
    ],
    ["1 Feb + 1 month is 28 days", "2025-02-01T12:00:00.000Z", p({ months: 1 }), "2025-03-01T12:00:00.000Z"],
    ["1 Mar + 1 month is 31 days", "2025-03-01T12:00:00.000Z", p({ months: 1 }), "2025-04-01T12:00:00.000Z"],
    [
      "a day over a European DST change",
      "2025-03-29T12:00:00.000Z",
      p({ days: 1 }),
      "2025-03-30T12:00:00.000Z",
    ],
    ["hours across midnight", "2025-12-31T20:00:00.000Z", p({ hours: 5 }), "2026-01-01T01:00:00.000Z"],
    ["time of day is kept", "2025-01-31T13:45:30.123Z", p({ months: 1 }), "2025-02-28T13:45:30.123Z"],
    [
      "two-digit years stay themselves",
      "0050-01-31T00:00:00.000Z",
      p({ months: 1 }),
      "0050-02-28T00:00:00.000Z",
    ],
  ])("%s", (_label, start, period, expected) => {
    expect(addPeriod(d(start), period).toISOString()).toBe(expected);
  });

  it("does not mutate its argument", () => {
    const start = d("2025-01-31T12:00:00.000Z");
    addPeriod(start, p({ months: 1, days: 3 }));
    expect(start.toISOString()).toBe("2025-01-31T12:00:00.000Z");
  });

  it("always moves forward for a non-zero period", () => {
    fc.assert(
      fc.property(dateArb, periodArb, (start, period) => {
        expect(addPeriod(start, period).getTime()).toBeGreaterThan(start.getTime());
      }),
    );
  });

  it("with only years and months, lands on the target month, day clamped, time kept", () => {
    fc.assert(
      fc.property(
        dateArb,
        fc.integer({ min: 0, max: 20 }),
        fc.integer({ min: 0, max: 100 }),
        (start, years, months) => {
          const end = addPeriod(start, p({ years, months }));
          const monthsMoved =
            (end.getUTCFullYear() - start.getUTCFullYear()) * 12 + end.getUTCMonth() - start.getUTCMonth();
          expect(monthsMoved).toBe(years * 12 + months);
          expect(end.getUTCDate()).toBeLessThanOrEqual(start.getUTCDate());
          if (start.getUTCDate() <= 28) expect(end.getUTCDate()).toBe(start.getUTCDate());
          expect(end.getTime() % 86_400_000).toBe(start.getTime() % 86_400_000);
        },
      ),
    );
  });

  it("adds weeks, days and hours as exact multiples of 24 and 1 hours", () => {
    fc.assert(
      fc.property(
        dateArb,
        fc.integer({ min: 0, max: 200 }),
        fc.integer({ min: 0, max: 500 }),
        fc.integer({ min: 0, max: 5000 }),
        (start, weeks, days, hours) => {
          const end = addPeriod(start, p({ weeks, days, hours }));
          expect(end.getTime() - start.getTime()).toBe(((weeks * 7 + days) * 24 + hours) * 3_600_000);
        },
      ),
    );
  });
});

describe("subtractPeriod", () => {
  it.each([
    [
      "31 Mar - 1 month clamps to 28 Feb",
      "2025-03-31T12:00:00.000Z",
      p({ months: 1 }),
      "2025-02-28T12:00:00.000Z",
    ],
    ["leap day - 1 year", "2024-02-29T12:00:00.000Z", p({ years: 1 }), "2023-02-28T12:00:00.000Z"],
    ["1 Mar - 1 day", "2024-03-01T12:00:00.000Z", p({ days: 1 }), "2024-02-29T12:00:00.000Z"],
    ["days before months", "2023-03-29T12:00:00.000Z", p({ months: 1, days: 1 }), "2023-02-28T12:00:00.000Z"],
    ["hours across midnight", "2025-01-01T06:00:00.000Z", p({ hours: 7 }), "2024-12-31T23:00:00.000Z"],
    ["months across a year start", "2025-02-15T12:00:00.000Z", p({ months: 3 }), "2024-11-15T12:00:00.000Z"],
  ])("%s", (_label, end, period, expected) => {
    expect(subtractPeriod(d(end), period).toISOString()).toBe(expected);
  });

  it("undoes addPeriod, landing no later than the start and exactly on it when no clamping happened", () => {
    fc.assert(
      fc.property(dateArb, periodArb, (start, period) => {
        const back = subtractPeriod(addPeriod(start, period), period);
        expect(back.getTime()).toBeLessThanOrEqual(start.getTime());
        if (start.getUTCDate() <= 28) expect(back.getTime()).toBe(start.getTime());
      }),
    );
  });

  it("always moves backward for a non-zero period", () => {
    fc.assert(
      fc.property(dateArb, periodArb, (end, period) => {
        expect(subtractPeriod(end, period).getTime()).toBeLessThan(end.getTime());
      }),
    );
  });
});
