import { describe, expect, it } from "vitest";
import { isClosed, monthOf, parseMonth, previousMonth } from "../../src/domain/charges";

/** Which month a statement covers and when it is closed (domain/charges.ts). */

describe("isClosed: a month is closed once over and recorded closed", () => {
  const march = monthOf(new Date("2027-03-15T00:00:00.000Z"));

  it("is closed from the first instant of the next month, once the close recorded that very month", () => {
    expect(isClosed(march, march.end, "2027-03")).toBe(true);
    expect(isClosed(march, new Date(march.end.getTime() + 86_400_000), "2027-05")).toBe(true);
  });

  it("is open while the month runs, or until its close (or a later month's) is recorded", () => {
    expect(isClosed(march, new Date(march.end.getTime() - 1), "2027-03")).toBe(false);
    expect(isClosed(march, march.end, "2027-02")).toBe(false);
    expect(isClosed(march, march.end, null)).toBe(false);
  });
});

describe("months", () => {
  it("previousMonth is the month just before, across a year start", () => {
    expect(previousMonth(monthOf(new Date("2027-01-01T00:00:00.000Z"))).name).toBe("2026-12");
    expect(previousMonth(monthOf(new Date("2027-03-31T23:59:59.999Z"))).name).toBe("2027-02");
  });

  it("parseMonth bounds a month by its first instant and the next month's", () => {
    const month = parseMonth("2027-12");
    expect(month?.start.toISOString()).toBe("2027-12-01T00:00:00.000Z");
    expect(month?.end.toISOString()).toBe("2028-01-01T00:00:00.000Z");
    expect(parseMonth("9999-12")).toBeNull();
    expect(parseMonth("2027-13")).toBeNull();
  });
});
