import { describe, expect, it } from "vitest";
import { MAX_RUN_INTERVALS } from "../../src/domain/metering";
import { amountChangeRefusal, deploymentRefusal, runRefusal } from "../../src/domain/refusals";
import {
  chainStatus,
  isExpired,
  type SubscriptionRecord,
  startDeployed,
  statusOf,
  termPriceMinor,
} from "../../src/domain/subscriptions";
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

describe("statusOf: a term's status at the instants that bound it", () => {
  const bought = { ...running, deploymentStatus: "DEPLOYED" as const };
  const at = (iso: string) => new Date(iso);

  it.each([
    ["inactive a millisecond before it starts", "2027-03-01T11:59:59.999Z", "inactive"],
    ["active from the instant it starts", "2027-03-01T12:00:00.000Z", "active"],
    ["active a millisecond before it ends", "2027-04-01T11:59:59.999Z", "active"],
    ["expired from the instant it ends: its end is exclusive", "2027-04-01T12:00:00.000Z", "expired"],
  ] as const)("is %s", (_, now, status) => {
    expect(statusOf(bought, at(now), false)).toBe(status);
  });

  it("is expired at its end time, and not a millisecond before", () => {
    expect(isExpired(running, at("2027-04-01T12:00:00.000Z"))).toBe(true);
    expect(isExpired(running, at("2027-04-01T11:59:59.999Z"))).toBe(false);
  });
});

describe("termPriceMinor: what a term costs", () => {
  const at = (iso: string) => new Date(iso);

  it("prices a depletable per unit bought", () => {
    expect(
      termPriceMinor({ kind: "depletable", unitPriceMinor: 7 }, 3, at("2027-03-01T12:00:00Z"), null),
    ).toBe(21n);
  });

  it("prices a timed term per unit and hour, for every unit", () => {
    const start = at("2027-03-01T12:00:00Z");
    const end = at("2027-03-02T12:00:00Z");
    expect(termPriceMinor({ kind: "timed", unitPriceMinor: 10 }, 1, start, end)).toBe(240n);
    expect(termPriceMinor({ kind: "timed", unitPriceMinor: 10 }, 3, start, end)).toBe(720n);
  });

  it("prices a CaaS cloud nothing up front", () => {
    expect(termPriceMinor({ kind: "caas", unitPriceMinor: 10 }, 3, at("2027-03-01T12:00:00Z"), null)).toBe(
      0n,
    );
  });
});

describe("startDeployed: a syndicated term its vendor deploys late", () => {
  it("is priced again as the term it gets: a month read from its deployment", () => {
    const bought = {
      kind: "timed",
      unitPriceMinor: 10,
      amount: 2,
      startTime: "2027-02-01T12:00:00.000Z",
      endTime: "2027-03-01T12:00:00.000Z",
      period: "1 month",
      createdWith: "period",
      endedAt: null,
      priceMinor: "13440",
    } as SubscriptionRecord;
    const deployed = startDeployed(bought, new Date("2027-03-01T12:00:00.000Z"));
    expect(deployed).toMatchObject({
      startTime: "2027-03-01T12:00:00.000Z",
      endTime: "2027-04-01T12:00:00.000Z",
      priceMinor: "14880",
    });
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

describe("a cloud's run history at its bound", () => {
  // One start a minute from 1 January 1970: the bound, within one month (a history stored keeps
  // only its months not wholly billed).
  const M = 60_000;
  const full = Array.from({ length: MAX_RUN_INTERVALS }, (_, i) => ({
    start: i * M,
    end: i * M + 1,
    quantity: 1,
  }));
  const stopped = {
    kind: "caas" as const,
    endedAt: null,
    unitPriceMinor: 100,
    amount: 1,
    runs: full,
    deploymentStatus: "DEPLOYED" as const,
  };
  const running = {
    ...stopped,
    runs: [...full.slice(1), { start: MAX_RUN_INTERVALS * M, end: null, quantity: 1 }],
  };
  const sameMonth = new Date(MAX_RUN_INTERVALS * M);
  const nextMonth = new Date(Date.UTC(1970, 1, 1));

  it("refuses what would add an interval: a start, a resize while running", () => {
    expect(runRefusal(stopped, "start", sameMonth)).toMatchObject({ kind: "conflict", point: "/do" });
    expect(amountChangeRefusal(running, 2)).toMatchObject({ kind: "conflict", point: "/amount" });
  });

  it("never a stop, a start of a running cloud, a resize while stopped, or one below the bound", () => {
    expect(runRefusal(running, "stop", sameMonth)).toBeNull();
    expect(runRefusal(stopped, "stop", sameMonth)).toBeNull();
    expect(runRefusal(running, "start", sameMonth)).toBeNull();
    expect(amountChangeRefusal(stopped, 2)).toBeNull();
    expect(amountChangeRefusal(running, 1)).toBeNull();
    expect(runRefusal({ ...stopped, runs: full.slice(1) }, "start", sameMonth)).toBeNull();
  });

  it("refuses a start of a cloud its vendor undeployed, never its stop", () => {
    const undeployed = { ...stopped, runs: [], deploymentStatus: "UNDEPLOYED" as const };
    expect(runRefusal(undeployed, "start", nextMonth)).toMatchObject({ kind: "conflict", point: "/do" });
    expect(runRefusal({ ...running, deploymentStatus: "UNDEPLOYED" }, "stop", nextMonth)).toBeNull();
    expect(runRefusal({ ...undeployed, deploymentStatus: "STOPPED" }, "start", nextMonth)).toBeNull();
  });

  it("never a start of a cloud stopped at the bound once its month is over: that month is billed whole", () => {
    expect(runRefusal(stopped, "start", nextMonth)).toBeNull();
    // Asked at an instant before its history's last (work accepted earlier), it starts at that last.
    expect(runRefusal(stopped, "start", new Date(0))).toMatchObject({ kind: "conflict" });
  });
});

describe("a vendor's report on a subscription that has ended", () => {
  const ended = {
    endedAt: "2026-01-01T00:00:00.000Z",
    syndicatedEndpoints: [],
    endUserInstructions: null,
  };

  it("names UNDEPLOYED, the report it still takes, only where it may go there", () => {
    const deployed = { ...ended, deploymentStatus: "DEPLOYED" as const };
    expect(deploymentRefusal(deployed, { endUserInstructions: "x" })?.message).toMatch(
      /only deploymentStatus UNDEPLOYED/,
    );
    expect(deploymentRefusal(deployed, { deploymentStatus: "UNDEPLOYED" })).toBeNull();
    const failed = { ...ended, deploymentStatus: "FAILED" as const };
    expect(deploymentRefusal(failed, { deploymentStatus: "UNDEPLOYED" })).toMatchObject({
      kind: "bad_request",
    });
    const refusal = deploymentRefusal(failed, { endUserInstructions: "x" });
    expect(refusal).toMatchObject({ kind: "conflict", point: "/endUserInstructions" });
    expect(refusal?.message).not.toMatch(/UNDEPLOYED/);
  });
});
