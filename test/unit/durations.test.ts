import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type DurationInput,
  deployedTerm,
  type ExtendBase,
  LATEST_END,
  longestDeployed,
  previousNoon,
  type ResolvedDuration,
  resolveDuration,
  resolveExtension,
  roundEndToNoon,
  roundStart,
} from "../../src/domain/durations";

const d = (iso: string): Date => new Date(iso);
const iso = (x: Date): string => x.toISOString();

const NOW = d("2025-02-01T09:30:00.000Z");

/** Resolves and flattens to ISO strings so a mismatch shows the dates readably. */
function resolved(input: DurationInput, now: Date = NOW) {
  const result = resolveDuration(input, now);
  if (!result.ok) throw new Error(`expected success, got ${JSON.stringify(result.error)}`);
  return flat(result.value);
}

function flat(v: ResolvedDuration) {
  return { start: iso(v.start), end: iso(v.end), createdWith: v.createdWith, period: v.period };
}

function errorOf(input: DurationInput, now: Date = NOW) {
  const result = resolveDuration(input, now);
  if (result.ok) throw new Error(`expected an error, got ${JSON.stringify(flat(result.value))}`);
  return { code: result.error.code, fields: result.error.fields };
}

const isNoon = (x: Date): boolean => x.getTime() % 86_400_000 === 43_200_000;

describe("previousNoon", () => {
  it.each([
    ["exactly noon stays", "2025-02-01T12:00:00.000Z", "2025-02-01T12:00:00.000Z"],
    ["just after noon", "2025-02-01T12:00:00.001Z", "2025-02-01T12:00:00.000Z"],
    ["late evening", "2025-02-01T23:59:59.999Z", "2025-02-01T12:00:00.000Z"],
    ["just before noon goes to the day before", "2025-02-01T11:59:59.999Z", "2025-01-31T12:00:00.000Z"],
    ["midnight goes to the day before", "2025-03-01T00:00:00.000Z", "2025-02-28T12:00:00.000Z"],
    ["across a year start", "2025-01-01T03:00:00.000Z", "2024-12-31T12:00:00.000Z"],
    ["before the epoch", "1969-12-31T06:00:00.000Z", "1969-12-30T12:00:00.000Z"],
  ])("%s", (_label, input, expected) => {
    expect(iso(previousNoon(d(input)))).toBe(expected);
  });
});

describe("roundEndToNoon", () => {
  it.each([
    ["exactly noon stays", "2025-02-01T12:00:00.000Z", "2025-02-01T12:00:00.000Z"],
    ["just before noon", "2025-02-01T11:59:59.999Z", "2025-02-01T12:00:00.000Z"],
    ["midnight goes to that day's noon", "2025-02-01T00:00:00.000Z", "2025-02-01T12:00:00.000Z"],
    ["just after noon goes to the next day", "2025-02-01T12:00:00.001Z", "2025-02-02T12:00:00.000Z"],
    ["across a year end", "2024-12-31T13:00:00.000Z", "2025-01-01T12:00:00.000Z"],
    ["onto a leap day", "2024-02-28T18:00:00.000Z", "2024-02-29T12:00:00.000Z"],
  ])("%s", (_label, input, expected) => {
    expect(iso(roundEndToNoon(d(input)))).toBe(expected);
  });

  it("lands exactly on the first noon at or after its input", () => {
    fc.assert(
      fc.property(fc.date({ min: d("1970-01-01"), max: d("2200-01-01"), noInvalidDate: true }), (x) => {
        const end = roundEndToNoon(x);
        expect(isNoon(end)).toBe(true);
        expect(end.getTime()).toBeGreaterThanOrEqual(x.getTime());
        expect(end.getTime() - x.getTime()).toBeLessThan(86_400_000);
      }),
    );
  });
});

describe("roundStart", () => {
  it.each([
    ["a purchase for now starts now", "2025-02-01T09:30:00.000Z", "2025-02-01T09:30:00.000Z"],
    ["a start later today before noon starts now", "2025-02-01T11:00:00.000Z", "2025-02-01T09:30:00.000Z"],
    ["a start later today after noon starts at noon", "2025-02-01T15:00:00.000Z", "2025-02-01T12:00:00.000Z"],
    [
      "a start tomorrow morning starts at today's noon",
      "2025-02-02T09:00:00.000Z",
      "2025-02-01T12:00:00.000Z",
    ],
    ["a start tomorrow at noon stays", "2025-02-02T12:00:00.000Z", "2025-02-02T12:00:00.000Z"],
    [
      "a start tomorrow afternoon starts at tomorrow's noon",
      "2025-02-02T17:00:00.000Z",
      "2025-02-02T12:00:00.000Z",
    ],
  ])("%s", (_label, requested, expected) => {
    expect(iso(roundStart(d(requested), NOW))).toBe(expected);
  });

  it("starts now when the previous noon has already passed", () => {
    const now = d("2025-02-01T13:00:00.000Z");
    expect(iso(roundStart(d("2025-02-01T15:00:00.000Z"), now))).toBe("2025-02-01T13:00:00.000Z");
  });
});

describe("resolveDuration: the truth table", () => {
  it("start, end and period: ambiguous", () => {
    expect(
      errorOf({
        start_time: d("2025-02-10T12:00:00Z"),
        end_time: d("2025-03-10T12:00:00Z"),
        period: "1 month",
      }),
    ).toEqual({ code: "ambiguous", fields: ["start_time", "end_time", "period"] });
  });

  it("says each error in the spec's words: Ambiguous, Not specific enough", () => {
    const message = (input: DurationInput) => {
      const result = resolveDuration(input, NOW);
      return result.ok ? null : result.error.message;
    };
    const all = {
      start_time: d("2025-02-10T12:00:00Z"),
      end_time: d("2025-03-10T12:00:00Z"),
      period: "1 month",
    };
    expect(message(all)).toMatch(/^Ambiguous: /);
    expect(message({ start_time: d("2025-02-10T12:00:00Z") })).toMatch(/^Not specific enough: /);
    expect(message({})).toMatch(/^Not specific enough: /);
  });

  it("start and end: between them, rounded outwards to noon", () => {
    expect(resolved({ start_time: d("2025-02-10T15:00:00Z"), end_time: d("2025-02-20T15:00:00Z") })).toEqual({
      start: "2025-02-10T12:00:00.000Z",
      end: "2025-02-21T12:00:00.000Z",
      createdWith: "end_time",
      period: null,
    });
  });

  it("start and period: the period from start", () => {
    expect(resolved({ start_time: d("2025-02-10T15:00:00Z"), period: "1 month" })).toEqual({
      start: "2025-02-10T12:00:00.000Z",
      end: "2025-03-11T12:00:00.000Z",
      createdWith: "period",
      period: "1 month",
    });
  });

  it("start alone: not specific enough", () => {
    expect(errorOf({ start_time: d("2025-02-10T12:00:00Z") })).toEqual({
      code: "not_specific_enough",
      fields: ["end_time", "period"],
    });
  });

  it("end and period: the period until end", () => {
    expect(resolved({ end_time: d("2025-06-01T12:00:00Z"), period: "1 month" })).toEqual({
      start: "2025-05-01T12:00:00.000Z",
      end: "2025-06-01T12:00:00.000Z",
      createdWith: "period",
      period: "1 month",
    });
  });

  it("end alone: from now until end", () => {
    expect(resolved({ end_time: d("2025-03-01T00:00:00Z") })).toEqual({
      start: "2025-02-01T09:30:00.000Z",
      end: "2025-03-01T12:00:00.000Z",
      createdWith: "end_time",
      period: null,
    });
  });

  it("period alone: the period from now", () => {
    expect(resolved({ period: "2 months 1 week" })).toEqual({
      start: "2025-02-01T09:30:00.000Z",
      end: "2025-04-08T12:00:00.000Z",
      createdWith: "period",
      period: "2 months 1 week",
    });
  });

  it("nothing: not specific enough", () => {
    expect(errorOf({})).toEqual({ code: "not_specific_enough", fields: ["end_time", "period"] });
  });
});

describe("resolveDuration: details", () => {
  it("stores the period in canonical form", () => {
    expect(resolved({ period: "A week AND 2 MONTHS" }).period).toBe("2 months 1 week");
  });

  it("clamps a period-until-end start that falls before now to now", () => {
    expect(resolved({ end_time: d("2025-02-15T12:00:00Z"), period: "1 month" })).toEqual({
      start: "2025-02-01T09:30:00.000Z",
      end: "2025-02-15T12:00:00.000Z",
      createdWith: "period",
      period: "1 month",
    });
  });

  it("rounds a period-until-end start down to the previous noon", () => {
    expect(resolved({ end_time: d("2025-06-01T08:00:00Z"), period: "1 week" })).toEqual({
      start: "2025-05-24T12:00:00.000Z",
      end: "2025-06-01T12:00:00.000Z",
      createdWith: "period",
      period: "1 week",
    });
  });

  it("clamps 31 May minus a month to 30 April before rounding", () => {
    expect(resolved({ end_time: d("2025-05-31T12:00:00Z"), period: "1 month" }).start).toBe(
      "2025-04-30T12:00:00.000Z",
    );
  });

  it("rejects an unparseable period in every row that uses one", () => {
    const invalid = { code: "invalid_period", fields: ["period"] };
    expect(errorOf({ period: "forever" })).toEqual(invalid);
    expect(errorOf({ start_time: d("2025-02-10T12:00:00Z"), period: "0 days" })).toEqual(invalid);
    expect(errorOf({ end_time: d("2025-06-01T12:00:00Z"), period: "2 minutes" })).toEqual(invalid);
  });

  it("reports ambiguity before an invalid period", () => {
    expect(
      errorOf({ start_time: d("2025-02-10T12:00:00Z"), end_time: d("2025-03-10T12:00:00Z"), period: "nope" })
        .code,
    ).toBe("ambiguous");
  });

  it("starts a start_time in the past now, and counts its period from then", () => {
    for (const past of ["2025-01-31T11:59:59.999Z", "2024-06-01T00:00:00Z", "2025-02-01T09:29:59Z"]) {
      expect(resolved({ start_time: d(past), period: "1 month" })).toEqual({
        start: "2025-02-01T09:30:00.000Z",
        end: "2025-03-01T12:00:00.000Z",
        createdWith: "period",
        period: "1 month",
      });
    }
  });

  it("starts a start_time in the past now, up to its end_time", () => {
    expect(
      resolved({ start_time: d("2025-01-31T12:00:00.000Z"), end_time: d("2025-02-05T12:00:00Z") }),
    ).toEqual({
      start: "2025-02-01T09:30:00.000Z",
      end: "2025-02-05T12:00:00.000Z",
      createdWith: "end_time",
      period: null,
    });
  });

  it("rejects an end_time before start_time even though rounding would leave a day", () => {
    expect(errorOf({ start_time: d("2025-02-10T15:00:00Z"), end_time: d("2025-02-10T13:00:00Z") })).toEqual({
      code: "end_not_after_start",
      fields: ["start_time", "end_time"],
    });
  });

  it("rejects an end_time equal to start_time", () => {
    const t = d("2025-02-10T15:00:00Z");
    expect(errorOf({ start_time: t, end_time: t }).code).toBe("end_not_after_start");
  });

  it("rejects an end_time that already passed, even earlier this morning", () => {
    expect(errorOf({ end_time: d("2025-02-01T09:00:00Z") })).toEqual({
      code: "end_not_after_start",
      fields: ["end_time"],
    });
    expect(errorOf({ end_time: d("2025-01-31T15:00:00Z"), period: "1 week" })).toEqual({
      code: "end_not_after_start",
      fields: ["end_time", "period"],
    });
  });

  it("gives a past start_time's period in full from now, however short", () => {
    expect(resolved({ start_time: d("2025-01-31T12:00:00Z"), period: "1 hour" })).toMatchObject({
      start: "2025-02-01T09:30:00.000Z",
      end: "2025-02-01T12:00:00.000Z",
    });
  });

  it("rejects an end_time in the past even with a start_time further back", () => {
    expect(errorOf({ start_time: d("2025-01-20T12:00:00Z"), end_time: d("2025-01-25T12:00:00Z") })).toEqual({
      code: "end_not_after_start",
      fields: ["start_time", "end_time"],
    });
  });

  it("gives an hour bought at now until the next noon", () => {
    expect(resolved({ period: "1 hour" })).toMatchObject({
      start: "2025-02-01T09:30:00.000Z",
      end: "2025-02-01T12:00:00.000Z",
    });
  });

  it("never starts before now, always ends at noon after it starts (property)", () => {
    const nowArb = fc.date({ min: d("2000-01-01"), max: d("2100-01-01"), noInvalidDate: true });
    const offsetArb = fc.integer({ min: -2 * 86_400_000, max: 400 * 86_400_000 });
    const periodArb = fc.constantFrom(
      "1 hour",
      "1 day",
      "2 months 1 week",
      "1 year",
      "3 days 4 hours",
      "1 month",
    );
    const inputArb = fc.record({ start: offsetArb, end: offsetArb, period: periodArb }, { requiredKeys: [] });
    fc.assert(
      fc.property(nowArb, inputArb, (now, x) => {
        const input: DurationInput = {
          start_time: x.start === undefined ? undefined : new Date(now.getTime() + x.start),
          end_time: x.end === undefined ? undefined : new Date(now.getTime() + x.end),
          period: x.period,
        };
        const result = resolveDuration(input, now);
        if (!result.ok) return;
        const { start, end } = result.value;
        expect(start.getTime()).toBeGreaterThanOrEqual(now.getTime());
        expect(isNoon(end)).toBe(true);
        expect(end.getTime()).toBeGreaterThan(start.getTime());
        expect(start.getTime() === now.getTime() || isNoon(start)).toBe(true);
      }),
    );
  });

  it("succeeds for every valid one- or two-field combination with a future end (property)", () => {
    const nowArb = fc.date({ min: d("2000-01-01"), max: d("2100-01-01"), noInvalidDate: true });
    fc.assert(
      fc.property(nowArb, fc.integer({ min: 1, max: 400 * 86_400_000 }), (now, ahead) => {
        const end_time = new Date(now.getTime() + ahead);
        expect(resolveDuration({ end_time }, now).ok).toBe(true);
        expect(resolveDuration({ end_time, period: "1 week" }, now).ok).toBe(true);
        expect(resolveDuration({ start_time: now, end_time }, now).ok).toBe(true);
        expect(resolveDuration({ start_time: end_time, period: "1 day" }, now).ok).toBe(true);
      }),
    );
  });
});

describe("resolveExtension", () => {
  const extend = (last: ExtendBase, input: { end_time?: Date; period?: string } = {}, now = NOW) => {
    const result = resolveExtension(last, input, now);
    if (!result.ok) throw new Error(`expected success, got ${JSON.stringify(result.error)}`);
    return flat(result.value);
  };
  const byPeriod: ExtendBase = {
    start: d("2025-02-01T12:00:00Z"),
    end: d("2025-03-01T12:00:00Z"),
    createdWith: "period",
    period: "1 month",
  };
  const byEndTime: ExtendBase = { ...byPeriod, createdWith: "end_time", period: null };
  const days = (v: { start: string; end: string }) =>
    (d(v.end).getTime() - d(v.start).getTime()) / 86_400_000;

  it("re-reads a period from the new start: 1 Feb + '1 month' extends by 31 days", () => {
    const ext = extend(byPeriod);
    expect(ext).toEqual({
      start: "2025-03-01T12:00:00.000Z",
      end: "2025-04-01T12:00:00.000Z",
      createdWith: "period",
      period: "1 month",
    });
    expect(days(ext)).toBe(31);
  });

  it("repeats the exact interval of an end_time subscription: 1 Feb to 1 Mar extends by 28 days", () => {
    const ext = extend(byEndTime);
    expect(ext).toEqual({
      start: "2025-03-01T12:00:00.000Z",
      end: "2025-03-29T12:00:00.000Z",
      createdWith: "end_time",
      period: null,
    });
    expect(days(ext)).toBe(28);
  });

  it("in a leap year, the end_time variant repeats 29 days and the period variant gives 31", () => {
    const start = d("2024-02-01T12:00:00Z");
    const end = d("2024-03-01T12:00:00Z");
    const leapPeriod = extend({ start, end, createdWith: "period", period: "1 month" }, {}, start);
    const leapEndTime = extend({ start, end, createdWith: "end_time", period: null }, {}, start);
    expect(leapPeriod.end).toBe("2024-04-01T12:00:00.000Z");
    expect(days(leapPeriod)).toBe(31);
    expect(leapEndTime.end).toBe("2024-03-30T12:00:00.000Z");
    expect(days(leapEndTime)).toBe(29);
  });

  it("re-reads a period ending on a short month with clamping", () => {
    const last: ExtendBase = {
      start: d("2024-12-31T12:00:00Z"),
      end: d("2025-01-31T12:00:00Z"),
      createdWith: "period",
      period: "1 month",
    };
    expect(extend(last, {}, last.start).end).toBe("2025-02-28T12:00:00.000Z");
  });

  it("uses an explicit period and records it", () => {
    expect(extend(byEndTime, { period: "2 weeks" })).toEqual({
      start: "2025-03-01T12:00:00.000Z",
      end: "2025-03-15T12:00:00.000Z",
      createdWith: "period",
      period: "2 weeks",
    });
  });

  it("uses an explicit end_time rounded up to noon and records it", () => {
    expect(extend(byPeriod, { end_time: d("2025-03-20T08:00:00Z") })).toEqual({
      start: "2025-03-01T12:00:00.000Z",
      end: "2025-03-20T12:00:00.000Z",
      createdWith: "end_time",
      period: null,
    });
  });

  it("rounds an hours period up to the next noon", () => {
    expect(extend(byPeriod, { period: "3 hours" }).end).toBe("2025-03-02T12:00:00.000Z");
  });

  it("repeats an off-noon interval as its whole days, bought before noon or after", () => {
    for (const [bought, end] of [
      ["2025-02-01T15:00:00Z", "2025-03-29T12:00:00.000Z"],
      ["2025-02-01T09:00:00Z", "2025-03-29T12:00:00.000Z"],
      ["2025-02-01T00:00:00Z", "2025-03-29T12:00:00.000Z"],
      ["2025-02-28T11:00:00Z", "2025-03-02T12:00:00.000Z"],
    ] as const) {
      const boughtNow: ExtendBase = {
        start: d(bought),
        end: d("2025-03-01T12:00:00Z"),
        createdWith: "end_time",
        period: null,
      };
      expect(extend(boughtNow).end, bought).toBe(end);
    }
  });

  it("continues a lapsed chain from now: no term is bought that is over before it is bought", () => {
    expect(extend(byPeriod, {}, d("2025-06-01T00:00:00Z"))).toEqual({
      start: "2025-06-01T00:00:00.000Z",
      end: "2025-07-01T12:00:00.000Z",
      createdWith: "period",
      period: "1 month",
    });
    // A renewal passes the chain's end as now: it continues the chain, however late it runs.
    expect(extend(byPeriod, {}, byPeriod.end).start).toBe("2025-03-01T12:00:00.000Z");
  });

  it("falls back to the exact interval when the stored period no longer parses", () => {
    expect(extend({ ...byPeriod, period: "garbage" })).toEqual({
      start: "2025-03-01T12:00:00.000Z",
      end: "2025-03-29T12:00:00.000Z",
      createdWith: "end_time",
      period: null,
    });
  });

  it("rejects end_time together with period", () => {
    const result = resolveExtension(
      byPeriod,
      { end_time: d("2025-04-01T12:00:00Z"), period: "1 month" },
      NOW,
    );
    expect(result).toMatchObject({ ok: false, error: { code: "ambiguous", fields: ["end_time", "period"] } });
  });

  it("rejects an invalid period", () => {
    expect(resolveExtension(byPeriod, { period: "1 fortnight" }, NOW)).toMatchObject({
      ok: false,
      error: { code: "invalid_period", fields: ["period"] },
    });
  });

  it("rejects an end_time at or before the end of the chain", () => {
    for (const end_time of [
      d("2025-03-01T12:00:00Z"),
      d("2025-03-01T11:00:00Z"),
      d("2025-02-15T12:00:00Z"),
    ]) {
      expect(resolveExtension(byPeriod, { end_time }, NOW)).toMatchObject({
        ok: false,
        error: { code: "end_not_after_start", fields: ["end_time"] },
      });
    }
  });

  it("rejects an end_time equal to now on a lapsed chain, though rounding would leave hours to noon", () => {
    const now = d("2025-06-01T09:30:00Z");
    expect(resolveExtension(byPeriod, { end_time: now }, now)).toMatchObject({
      ok: false,
      error: { code: "end_not_after_start", fields: ["end_time"] },
    });
  });

  it("does not share the Date of the last subscription", () => {
    const result = resolveExtension(byPeriod, {}, NOW);
    expect(result.ok && result.value.start).not.toBe(byPeriod.end);
  });

  it("starts exactly at the chain's end and ends at a later noon (property)", () => {
    const noonArb = fc
      .integer({ min: 0, max: 60_000 })
      .map((n) => new Date(Date.UTC(2000, 0, 1, 12) + n * 86_400_000));
    const lastArb = fc
      .record({
        start: noonArb,
        lengthDays: fc.integer({ min: 1, max: 800 }),
        createdWith: fc.constantFrom("period" as const, "end_time" as const),
        period: fc.constantFrom("1 month", "1 year", "2 months 1 week", "10 days"),
      })
      .map(
        (x): ExtendBase => ({
          start: x.start,
          end: new Date(x.start.getTime() + x.lengthDays * 86_400_000),
          createdWith: x.createdWith,
          period: x.createdWith === "period" ? x.period : null,
        }),
      );
    fc.assert(
      fc.property(lastArb, (last) => {
        const result = resolveExtension(last, {}, last.start);
        expect(result.ok).toBe(true);
        if (!result.ok) return;
        expect(result.value.start.getTime()).toBe(last.end.getTime());
        expect(isNoon(result.value.end)).toBe(true);
        expect(result.value.createdWith).toBe(last.createdWith);
        expect(result.value.period).toBe(last.period);
        if (last.createdWith === "end_time") {
          expect(result.value.end.getTime() - result.value.start.getTime()).toBe(
            last.end.getTime() - last.start.getTime(),
          );
        }
      }),
    );
  });
});

describe("the latest end a term can have", () => {
  it("is the last noon of year 9999, which RFC 3339 can still write", () => {
    expect(LATEST_END.toISOString()).toBe("9999-12-31T12:00:00.000Z");
    expect(resolved({ end_time: d("9999-12-31T12:00:00Z") }).end).toBe("9999-12-31T12:00:00.000Z");
  });

  it.each([
    ["an end_time that rounds past it", { end_time: d("9999-12-31T12:00:00.001Z") }, ["end_time"]],
    [
      "a period that runs past it",
      { start_time: d("9999-12-01T12:00:00Z"), period: "1 month" },
      ["start_time", "period"],
    ],
  ])("refuses %s", (_, input: DurationInput, fields) => {
    expect(errorOf(input)).toEqual({ code: "end_too_late", fields });
  });

  it("refuses an extension past it, asked for or repeated", () => {
    const last: ExtendBase = {
      start: d("9999-11-01T12:00:00Z"),
      end: d("9999-12-01T12:00:00Z"),
      createdWith: "period",
      period: "1 month",
    };
    expect(resolveExtension(last, { period: "1 month" }, NOW)).toMatchObject({
      ok: false,
      error: { code: "end_too_late" },
    });
    expect(resolveExtension(last, {}, NOW)).toMatchObject({ ok: false, error: { code: "end_too_late" } });
    expect(resolveExtension(last, { end_time: d("9999-12-20T00:00:00Z") }, NOW)).toMatchObject({ ok: true });
  });
});

describe("the latest end a term can have, repeated", () => {
  it("allows a repeated term that ends exactly on it", () => {
    const last: ExtendBase = {
      start: d("9999-12-29T12:00:00Z"),
      end: d("9999-12-30T12:00:00Z"),
      createdWith: "end_time",
      period: null,
    };
    const result = resolveExtension(last, {}, NOW);
    expect(result.ok && iso(result.value.end)).toBe("9999-12-31T12:00:00.000Z");
  });
});

describe("longestDeployed: the longest term a deployment can make of a purchase", () => {
  it("bounds every deployment of every term bought, however late (a period read again from any start)", () => {
    fc.assert(
      fc.property(
        fc.date({ min: d("2024-01-01T00:00:00Z"), max: d("2030-01-01T00:00:00Z"), noInvalidDate: true }),
        fc.oneof(
          fc.record({
            period: fc.constantFrom(
              "1 month",
              "1 year",
              "2 months 1 week",
              "3 days 4 hours",
              "11 months",
              "1 hour",
            ),
          }),
          fc.record({ hours: fc.integer({ min: 1, max: 800 * 24 }) }),
        ),
        fc.integer({ min: 0, max: 400 * 24 * 60 }),
        (now, asked, lateMinutes) => {
          const start = new Date(now.getTime() + 3_600_000);
          const input =
            "period" in asked
              ? { start_time: start, period: asked.period }
              : { start_time: start, end_time: new Date(start.getTime() + asked.hours * 3_600_000) };
          const bought = resolveDuration(input, now);
          if (!bought.ok) return true;
          const at = new Date(bought.value.start.getTime() + lateMinutes * 60_000);
          const moved = deployedTerm(bought.value, at);
          const longest = longestDeployed(bought.value);
          const length = (t: ResolvedDuration) => t.end.getTime() - t.start.getTime();
          return (
            length(longest) >= length(bought.value) && (moved === null || length(moved) <= length(longest))
          );
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("a month is bounded by 31 days and the rounding's day, never past the latest end", () => {
    const bought = resolveDuration({ start_time: d("2027-02-01T12:00:00Z"), period: "1 month" }, NOW);
    if (!bought.ok) throw new Error("unresolved");
    expect(iso(longestDeployed(bought.value).end)).toBe("2027-03-05T12:00:00.000Z");
    const late: ResolvedDuration = { ...bought.value, start: d("9999-12-01T12:00:00Z"), end: LATEST_END };
    expect(longestDeployed(late).end).toEqual(LATEST_END);
  });
});

describe("deployedTerm: a syndicated term deployed after it should have started", () => {
  const bought = (
    end: string,
    createdWith: "end_time" | "period" = "end_time",
    period: string | null = null,
  ) => ({
    start: d("2025-02-01T10:00:00Z"),
    end: d(end),
    createdWith,
    period,
  });
  const deployed = (term: ExtendBase, at: string) => {
    const moved = deployedTerm(term, d(at));
    return moved && { start: iso(moved.start), end: iso(moved.end) };
  };

  it("an end_time term minutes late keeps its end: it costs those minutes less, never a day more", () => {
    expect(deployed(bought("2025-02-04T12:00:00Z"), "2025-02-01T10:05:00Z")).toEqual({
      start: "2025-02-01T10:05:00.000Z",
      end: "2025-02-04T12:00:00.000Z",
    });
  });

  it("an end_time term days late ends as many days later, as long as it was bought for", () => {
    expect(deployed(bought("2025-02-04T12:00:00Z"), "2025-02-04T10:00:00Z")?.end).toBe(
      "2025-02-07T12:00:00.000Z",
    );
  });

  it("an end_time term deployed after its moved interval's last noon ends at the next noon, as a purchase would", () => {
    expect(deployed(bought("2025-02-01T12:00:00Z"), "2025-02-01T12:30:00Z")?.end).toBe(
      "2025-02-02T12:00:00.000Z",
    );
  });

  it("is never longer than bought for an end_time term, and always ends at a noon after its start", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 400 * 24 }),
        fc.integer({ min: 0, max: 60 * 24 * 30 }),
        (hours, lateMinutes) => {
          const start = d("2025-02-01T10:00:00Z");
          const end = roundEndToNoon(new Date(start.getTime() + hours * 3_600_000));
          const at = new Date(start.getTime() + lateMinutes * 60_000);
          const moved = deployedTerm({ start, end, createdWith: "end_time", period: null }, at);
          if (!moved) return false;
          const longer = moved.end.getTime() - at.getTime() > end.getTime() - start.getTime();
          // Longer only when the moved interval ends before the first noon after `at` (then it is that noon).
          return (
            isNoon(moved.end) &&
            moved.end > at &&
            (!longer || moved.end.getTime() - 86_400_000 <= at.getTime())
          );
        },
      ),
    );
  });

  it("a period term is read again from its deployment", () => {
    expect(deployed(bought("2025-02-08T12:00:00Z", "period", "1 week"), "2025-02-03T15:00:00Z")?.end).toBe(
      "2025-02-11T12:00:00.000Z",
    );
  });

  it("never ends after the latest end a term can have", () => {
    const term: ExtendBase = {
      start: d("9999-12-28T12:00:00Z"),
      end: LATEST_END,
      createdWith: "end_time",
      period: null,
    };
    expect(deployed(term, "9999-12-29T08:00:00Z")?.end).toBe(iso(LATEST_END));
    const week: ExtendBase = {
      ...term,
      end: d("9999-12-30T12:00:00Z"),
      createdWith: "period",
      period: "2 days",
    };
    expect(deployed(week, "9999-12-30T20:00:00Z")?.end).toBe(iso(LATEST_END));
  });

  it("leaves a term that starts after its deployment as bought", () => {
    expect(deployed(bought("2025-02-04T12:00:00Z"), "2025-02-01T09:00:00Z")).toBeNull();
  });
});
