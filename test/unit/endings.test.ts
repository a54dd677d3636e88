import { describe, expect, it } from "vitest";
import { failedAt } from "../../src/domain/endings";
import type { SubscriptionRecord } from "../../src/domain/subscriptions";

/** How a subscription ends as failed (domain/endings.ts). */

const base = {
  id: "s1",
  kind: "caas",
  endedAt: null,
  endReason: null,
  runs: [],
} as unknown as SubscriptionRecord;
const AT = "2027-03-10T09:00:00.000Z";

describe("failedAt", () => {
  it("stops a running cloud at the instant it failed: nothing that ended is billed on", () => {
    const start = Date.parse("2027-03-01T00:00:00.000Z");
    const r = failedAt({ ...base, runs: [{ start, end: null, quantity: 2 }] }, AT);
    expect(r.runs).toEqual([{ start, end: Date.parse(AT), quantity: 2 }]);
    expect(r).toMatchObject({ endedAt: AT, endReason: "failed" });
  });

  it("records the hold released for a term holding its own, never for a term of a chain held by another", () => {
    expect(failedAt(base, AT).holdReleased).toBe(true);
    expect(failedAt({ ...base, heldBy: "s0" }, AT).holdReleased).toBeUndefined();
  });
});
