import { describe, expect, it } from "vitest";
import { renewalStep } from "../../src/domain/subscriptions";

const END = "2030-03-01T12:00:00.000Z";
const before = new Date(Date.parse(END) - 60_000);
const after = new Date(Date.parse(END) + 1);
const due = {
  endedAt: null,
  endTime: END,
  nextId: null,
  renewal: null,
  autoRenew: true,
  deploymentStatus: "DEPLOYED",
} as const;
const planned = { subscription: "renewal-id", order: "order-id" };

describe("renewalStep", () => {
  it.each([
    ["auto_renew on, before the end", "renew", due, before],
    ["auto_renew on, after the end", "renew", due, after],
    [
      "its own renewal planned and reserved",
      "renew",
      { ...due, renewal: planned, nextId: "renewal-id" },
      before,
    ],
    ["its own renewal planned, the place given back", "renew", { ...due, renewal: planned }, before],
    ["extended by hand", "skip", { ...due, nextId: "by-hand" }, before],
    [
      "extended by hand after a renewal was planned",
      "skip",
      { ...due, renewal: planned, nextId: "by-hand" },
      after,
    ],
    ["already ended", "skip", { ...due, endedAt: END }, after],
    ["open-ended", "skip", { ...due, endTime: null }, after],
    ["auto_renew off, before the end", "skip", { ...due, autoRenew: false }, before],
    ["auto_renew off, at the end", "expire", { ...due, autoRenew: false }, new Date(END)],
    ["auto_renew off, after the end", "expire", { ...due, autoRenew: false }, after],
    ["waiting for its vendor, auto_renew on", "skip", { ...due, deploymentStatus: "PENDING" }, after],
    [
      "waiting for its vendor, auto_renew off",
      "skip",
      { ...due, autoRenew: false, deploymentStatus: "PENDING" },
      after,
    ],
    ["deployed and stopped by its vendor", "renew", { ...due, deploymentStatus: "STOPPED" }, after],
  ] as const)("%s: %s", (_what, step, record, at) => {
    expect(renewalStep(record, at)).toBe(step);
  });
});

describe("renewalStep with the term after it", () => {
  const cancelledNext = { endedAt: "2030-02-20T08:00:00.000Z", endReason: "cancelled" } as const;
  const expiredNext = { endedAt: "2030-04-01T12:00:00.000Z", endReason: "expired" } as const;
  const liveNext = { endedAt: null, endReason: null } as const;
  const extended = { ...due, nextId: "next-id" };

  it.each([
    ["the chain cancelled after it, its term not over: it runs its course", "skip", cancelledNext, before],
    ["the chain cancelled after it, its term over: it expires", "expire", cancelledNext, after],
    ["the chain cancelled after it, at its very end: it expires", "expire", cancelledNext, new Date(END)],
    ["the term after it ran its course: nothing is due, even past its end", "skip", expiredNext, after],
    ["the term after it live: nothing is due", "skip", liveNext, after],
  ] as const)("%s: %s", (_what, step, successor, at) => {
    expect(renewalStep(extended, at, successor)).toBe(step);
    expect(renewalStep({ ...extended, autoRenew: false }, at, successor)).toBe(step);
  });
});
