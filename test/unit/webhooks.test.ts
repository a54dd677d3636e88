import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  canMoveTo,
  carriesOn,
  chainDeployment,
  chainStatus,
  type DeploymentStatus,
  deferSeconds,
  eventOf,
  MAX_DELAY_SECONDS,
  MAX_GRACE_SECRETS,
  nextAttemptIn,
  olderAfterRotation,
  RETRY_SCHEDULE,
  retryDelay,
  secretsInGrace,
  undeployedWithChain,
  webhookRetentionMs,
} from "../../src/domain/webhooks";

const live = {
  deploymentStatus: "DEPLOYED",
  startTime: "2030-01-01T12:00:00.000Z",
  endTime: "2030-02-01T12:00:00.000Z",
  endedAt: null,
  autoRenew: false,
  amount: 1,
  product: "backup",
  customerId: "c1",
  orderId: "o1",
  syndicatedEndpoints: ["https://backup.example/c1"],
  endUserInstructions: null,
  remaining: null,
  runs: [{ start: 0, end: null, quantity: 1 }],
};
const ended = { ...live, endedAt: "2030-01-15T12:00:00.000Z" };

describe("eventOf", () => {
  it.each([
    ["the first version", "CREATED", null, live],
    ["a change the vendor reads (its quantity)", "MODIFIED", live, { ...live, amount: 2 }],
    ["a change the vendor reads (its endpoints)", "MODIFIED", live, { ...live, syndicatedEndpoints: [] }],
    ["a change the vendor reads (auto_renew: renewable)", "MODIFIED", live, { ...live, autoRenew: true }],
    [
      "a change the vendor is told of (stopped)",
      "MODIFIED",
      live,
      { ...live, runs: [{ start: 0, end: 5, quantity: 1 }] },
    ],
    ["bookkeeping only (a place reserved in its chain)", null, live, { ...live, nextId: "s2" }],
    [
      "bookkeeping only (a running interval split at a month's end)",
      null,
      live,
      {
        ...live,
        runs: [
          { start: 0, end: 5, quantity: 1 },
          { start: 5, end: null, quantity: 1 },
        ],
      },
    ],
    ["the version that ends it", "DELETED", live, ended],
    ["a change after it ended", null, ended, { ...ended, deploymentStatus: "UNDEPLOYED" }],
    ["a first version already ended (its purchase undone before it was created)", null, null, ended],
  ] as const)("%s: %s", (_what, event, previous, next) => {
    expect(eventOf(previous, next)).toBe(event);
  });
});

describe("retryDelay", () => {
  it("follows the schedule, then waits the cap for good", () => {
    expect(RETRY_SCHEDULE.map((_, i) => retryDelay(i, 0.5))).toEqual([...RETRY_SCHEDULE]);
    expect(RETRY_SCHEDULE.at(-1)).toBe(MAX_DELAY_SECONDS);
    for (const retry of [RETRY_SCHEDULE.length, 50, 500])
      expect(retryDelay(retry, 0.5)).toBe(MAX_DELAY_SECONDS);
  });

  it("jitters by ±20%, never past the queue's 12-hour limit on a delay", () => {
    expect(retryDelay(0, 0)).toBe(24);
    expect(retryDelay(0, 1)).toBe(36);
    expect(retryDelay(40, 0)).toBe(MAX_DELAY_SECONDS * 0.8);
    expect(retryDelay(40, 1)).toBe(MAX_DELAY_SECONDS);
  });
});

describe("nextAttemptIn", () => {
  const DAY = 86_400_000;
  const start = Date.parse("2030-01-01T00:00:00Z");
  const at = (now: number, retryAfter: number | null = null, retry = 30) =>
    nextAttemptIn({
      retry,
      random: 0.5,
      retryAfter,
      now,
      scheduleStartedAt: start,
      retentionMs: 30 * DAY,
    });

  it("retries at the cap while the next attempt falls within the horizon, then gives up", () => {
    expect(at(start + DAY)).toBe(MAX_DELAY_SECONDS);
    expect(at(start + 30 * DAY - MAX_DELAY_SECONDS * 1000)).toBe(MAX_DELAY_SECONDS);
    expect(at(start + 30 * DAY - MAX_DELAY_SECONDS * 1000 + 1)).toBeNull();
    expect(at(start + 31 * DAY)).toBeNull();
  });

  it("honours a Retry-After longer than the schedule's wait, within the horizon, never past it", () => {
    // The first retry waits about 30 s: an endpoint asking for 2 minutes gets them.
    expect(at(start + DAY, 120, 0)).toBe(120);
    expect(at(start + DAY, 2 * MAX_DELAY_SECONDS, 0)).toBe(2 * MAX_DELAY_SECONDS);
    expect(at(start + 30 * DAY - 60_000, 120, 0)).toBeNull();
  });

  it("never retries sooner than the schedule, whatever Retry-After says", () => {
    const scheduled = at(start + DAY, null, 0) as number;
    expect(scheduled).toBeGreaterThan(0);
    expect(at(start + DAY, 0, 0)).toBe(scheduled);
    expect(at(start + DAY, 1, 0)).toBe(scheduled);
    expect(at(start + DAY, 120)).toBe(MAX_DELAY_SECONDS);
  });

  it("counts a redelivery's horizon from its own start (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 200 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.integer({ min: 0, max: 40 * DAY }),
        (retry, random, elapsed) => {
          const delay = nextAttemptIn({
            retry,
            random,
            retryAfter: null,
            now: start + elapsed,
            scheduleStartedAt: start,
            retentionMs: 30 * DAY,
          });
          if (delay === null) expect(elapsed + retryDelay(retry, random) * 1000).toBeGreaterThan(30 * DAY);
          else expect(elapsed + delay * 1000).toBeLessThanOrEqual(30 * DAY);
        },
      ),
    );
  });
});

describe("webhookRetentionMs", () => {
  it.each([
    [undefined, 30],
    ["30", 30],
    ["7", 7],
    ["0.5", 0.5],
    ["0", 30],
    ["-3", 30],
    ["thirty", 30],
  ])("WEBHOOK_RETENTION_DAYS=%s: %s days", (value, days) => {
    expect(webhookRetentionMs({ WEBHOOK_RETENTION_DAYS: value })).toBe(days * 86_400_000);
  });
});

describe("deferSeconds", () => {
  const now = Date.parse("2030-01-01T00:00:00Z");
  it("looks again a minute after the older event's next attempt, at most the cap", () => {
    expect(deferSeconds(null, now)).toBe(60);
    expect(deferSeconds(now - 5000, now)).toBe(60);
    expect(deferSeconds(now + 30_000, now)).toBe(90);
    expect(deferSeconds(now + 86_400_000, now)).toBe(MAX_DELAY_SECONDS);
  });
});

describe("deployment statuses along a chain", () => {
  const term = (deploymentStatus: DeploymentStatus, more: { undeployedWithChain?: boolean } = {}) => ({
    deploymentStatus,
    endedAt: null,
    ...more,
  });

  it("FAILED is final: no report moves a failed term on", () => {
    for (const to of ["PENDING", "DEPLOYED", "UNDEPLOYED", "STOPPED"] as const) {
      expect(canMoveTo("FAILED", to)).toBe(false);
    }
    expect(canMoveTo("FAILED", "FAILED")).toBe(true);
    expect(canMoveTo("PENDING", "DEPLOYED")).toBe(true);
  });

  it("a STOPPED term's chain takes DEPLOYED: its application is still deployed", () => {
    expect(chainStatus("STOPPED")).toBe("DEPLOYED");
    expect(chainStatus("UNDEPLOYED")).toBe("UNDEPLOYED");
    expect(chainStatus("DEPLOYED")).toBe("DEPLOYED");
  });

  it("UNDEPLOYED reported earlier undeploys a later term DEPLOYED or STOPPED, nothing else", () => {
    expect(chainDeployment(term("DEPLOYED"), "UNDEPLOYED")).toBe("UNDEPLOYED");
    expect(chainDeployment(term("STOPPED"), "UNDEPLOYED")).toBe("UNDEPLOYED");
    expect(chainDeployment(term("PENDING"), "UNDEPLOYED")).toBeNull();
    expect(chainDeployment(term("FAILED"), "UNDEPLOYED")).toBeNull();
    expect(
      chainDeployment({ ...term("DEPLOYED"), endedAt: "2030-01-15T12:00:00.000Z" }, "UNDEPLOYED"),
    ).toBeNull();
  });

  it("DEPLOYED reported earlier lifts only an UNDEPLOYED carried along the chain, never the term's own", () => {
    expect(chainDeployment(term("UNDEPLOYED", { undeployedWithChain: true }), "DEPLOYED")).toBe("DEPLOYED");
    expect(chainDeployment(term("UNDEPLOYED"), "DEPLOYED")).toBeNull();
    expect(chainDeployment(term("UNDEPLOYED", { undeployedWithChain: false }), "DEPLOYED")).toBeNull();
    expect(chainDeployment(term("STOPPED"), "DEPLOYED")).toBeNull();
  });

  it("a term's own UNDEPLOYED, or DEPLOYED lifting its own UNDEPLOYED, carries on; a carried one does not", () => {
    expect(carriesOn(term("DEPLOYED"), term("UNDEPLOYED"))).toBe(true);
    expect(carriesOn(term("DEPLOYED"), term("UNDEPLOYED", { undeployedWithChain: true }))).toBe(false);
    expect(carriesOn(term("UNDEPLOYED"), term("DEPLOYED"))).toBe(true);
    expect(carriesOn(term("UNDEPLOYED", { undeployedWithChain: true }), term("DEPLOYED"))).toBe(false);
    expect(carriesOn(term("DEPLOYED"), term("STOPPED"))).toBe(false);
    expect(carriesOn(term("UNDEPLOYED"), term("UNDEPLOYED"))).toBe(false);
  });

  it("a term is UNDEPLOYED with its chain when carried there, or when a report naming no status leaves it so", () => {
    expect(undeployedWithChain("UNDEPLOYED", {}, true, false)).toBe(true);
    expect(undeployedWithChain("DEPLOYED", {}, true, true)).toBe(false);
    expect(undeployedWithChain("UNDEPLOYED", {}, false, true)).toBe(true);
    expect(undeployedWithChain("DEPLOYED", {}, false, true)).toBe(false);
    expect(undeployedWithChain("UNDEPLOYED", { deploymentStatus: "UNDEPLOYED" }, false, true)).toBe(false);
  });
});

describe("secrets in grace after rotations", () => {
  const at = (hour: number) => `2026-12-05T${String(hour).padStart(2, "0")}:00:00.000Z`;
  const grace = (secret: string, hour: number) => ({ secret, expiresAt: at(hour) });

  it("keeps each replaced secret until its own expiry, newest first", () => {
    expect(secretsInGrace(grace("b", 12), [grace("a", 10), grace("z", 8)], at(9))).toEqual([
      grace("b", 12),
      grace("a", 10),
    ]);
    expect(secretsInGrace(null, [], at(9))).toEqual([]);
  });

  it("a rotation keeps every secret still in grace, and none past the bound", () => {
    expect(olderAfterRotation(grace("b", 12), [grace("a", 10)], at(9))).toEqual([
      grace("b", 12),
      grace("a", 10),
    ]);
    const full = Array.from({ length: MAX_GRACE_SECRETS - 1 }, (_, i) => grace(`s${i}`, 20));
    expect(olderAfterRotation(grace("p", 20), full, at(9))).toBeNull();
    expect(olderAfterRotation(grace("p", 20), full, at(21))).toEqual([]);
  });
});
