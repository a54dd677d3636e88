import { describe, expect, it } from "vitest";
import { MAX_PRICE_MINOR } from "../../src/domain/money";
import {
  amountChangeRefusal,
  autoRenewRefusal,
  cloudRefusal,
  deploymentRefusal,
  runRefusal,
} from "../../src/domain/refusals";

/** Why a change cannot apply (domain/refusals.ts), at the edges the subscriptions tests leave out. */

describe("cloudRefusal: a month of one usage line stays chargeable", () => {
  // A usage line bills at most a 31-day month: 744 hours.
  const dearest = MAX_PRICE_MINOR / 744n;

  it("runs a cloud whose 744-hour month is within the bound, refuses one a minor unit an hour dearer", () => {
    expect(cloudRefusal(1, dearest)).toBeNull();
    expect(cloudRefusal(1, dearest + 1n)).toMatch(/more than the/);
    expect(cloudRefusal(2, dearest / 2n + 1n)).toMatch(/more than the/);
  });
});

describe("a subscription that has ended takes no change of its amount or its runs", () => {
  const cloud = {
    kind: "caas" as const,
    endedAt: "2027-03-01T00:00:00.000Z",
    unitPriceMinor: 100,
    amount: 1,
    runs: [],
    deploymentStatus: "DEPLOYED" as const,
  };
  const later = new Date("2027-03-02T00:00:00.000Z");

  it("refuses a resize, a start and a stop of a cloud that has ended", () => {
    expect(amountChangeRefusal(cloud, 2)).toMatchObject({ kind: "conflict", point: "/amount" });
    expect(runRefusal(cloud, "start", later)).toMatchObject({ kind: "conflict", point: "/do" });
    expect(runRefusal(cloud, "stop", later)).toMatchObject({ kind: "conflict", point: "/do" });
  });

  it("lets the same cloud, live, be resized and started", () => {
    expect(amountChangeRefusal({ ...cloud, endedAt: null }, 2)).toBeNull();
    expect(runRefusal({ ...cloud, endedAt: null }, "start", later)).toBeNull();
  });
});

describe("autoRenewRefusal", () => {
  const ended = { autoRenew: false, endedAt: "2027-03-01T00:00:00.000Z", nextId: null };

  it("refuses turning renewal on for a term that has ended with nothing after it", () => {
    expect(autoRenewRefusal(ended, true)).toMatchObject({ kind: "conflict", point: "/auto_renew" });
  });

  it("never refuses what changes nothing, turning it off, or a chain that goes on", () => {
    expect(autoRenewRefusal({ ...ended, autoRenew: true }, true)).toBeNull();
    expect(autoRenewRefusal(ended, false)).toBeNull();
    expect(autoRenewRefusal({ ...ended, nextId: "next" }, true)).toBeNull();
    expect(autoRenewRefusal({ ...ended, endedAt: null }, true)).toBeNull();
  });
});

describe("deploymentRefusal on a subscription that has ended", () => {
  const ended = {
    deploymentStatus: "DEPLOYED" as const,
    endedAt: "2027-03-01T00:00:00.000Z",
    syndicatedEndpoints: ["https://a.example", "https://b.example"],
    endUserInstructions: "log in",
  };

  it("takes a report that repeats what it holds, and refuses one that changes its endpoints", () => {
    expect(
      deploymentRefusal(ended, {
        deploymentStatus: "DEPLOYED",
        syndicatedEndpoints: ["https://a.example", "https://b.example"],
        endUserInstructions: "log in",
      }),
    ).toBeNull();
    expect(deploymentRefusal(ended, { syndicatedEndpoints: ["https://a.example"] })).toMatchObject({
      kind: "conflict",
      point: "/syndicatedEndpoints",
    });
  });
});
