import { describe, expect, it } from "vitest";
import { chainStatus } from "../../src/domain/subscriptions";
import { retryAfterSeconds } from "../../src/http/operations";

const NOW = new Date("2027-03-10T09:00:00.000Z");
const term = (startTime: string, endTime: string | null, endedAt: string | null = null) => ({
  startTime,
  endTime,
  endedAt,
});
const over = term("2027-02-01T12:00:00.000Z", "2027-03-01T12:00:00.000Z");
const running = term("2027-03-01T12:00:00.000Z", "2027-04-01T12:00:00.000Z");
const toCome = term("2027-04-01T12:00:00.000Z", "2027-05-01T12:00:00.000Z");
const cancelled = term("2027-04-01T12:00:00.000Z", "2027-05-01T12:00:00.000Z", "2027-03-05T08:00:00.000Z");

describe("chainStatus: a chain as groupedsubscriptions lists it", () => {
  it.each([
    ["active while one term is, whatever the first", [over, running, toCome], "active"],
    ["inactive when none is but one is still to come", [over, cancelled, toCome], "inactive"],
    ["expired when every term is over or ended", [over, cancelled], "expired"],
    ["one term: its own status", [toCome], "inactive"],
  ] as const)("is %s", (_, terms, status) => {
    expect(chainStatus(terms, NOW)).toBe(status);
  });
});

describe("retryAfterSeconds: how long a client waits before polling an operation", () => {
  const created = "2027-03-10T09:00:00.000Z";
  const after = (seconds: number) => Date.parse(created) + seconds * 1000;

  it.each([
    [0, "1"],
    [15, "1"],
    [35, "3"],
    [300, "30"],
    [600, "60"],
    [7 * 86_400, "60"],
  ])("after %i s: %s", (age, wait) => {
    expect(retryAfterSeconds(created, after(age))).toBe(wait);
  });
});
