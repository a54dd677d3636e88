import { describe, expect, it } from "vitest";
import { drawOf, mayStillDraw, REPORT_DRAWS_FOR_MS } from "../../src/domain/consumption";
import { endInstant } from "../../src/domain/endings";
import type { SubscriptionRecord } from "../../src/domain/subscriptions";

describe("endInstant: when a subscription ended now ends", () => {
  const now = new Date("2026-12-03T12:00:00.000Z");
  it("is now, unless a report younger than now drew from it: then that report's time", () => {
    expect(endInstant({}, now)).toBe("2026-12-03T12:00:00.000Z");
    expect(endInstant({ drawnUntil: "2026-12-03T11:59:59.999Z" }, now)).toBe("2026-12-03T12:00:00.000Z");
    expect(endInstant({ drawnUntil: "2026-12-03T12:00:00.001Z" }, now)).toBe("2026-12-03T12:00:00.001Z");
  });
});

const now = new Date("2026-12-03T12:00:00.000Z");
const tx = (remaining: number, more: Partial<SubscriptionRecord> = {}) =>
  ({ id: "s", kind: "depletable", amount: 10, remaining, endedAt: null, ...more }) as SubscriptionRecord;

describe("drawOf: what a consumption report does to one subscription", () => {
  it("takes what it has, up to the quantity, and remembers it with the report's time", () => {
    const draw = drawOf(tx(3), 5, "r1", now, null, false);
    expect(draw).toMatchObject({ kind: "draws", took: 3, leftover: 2 });
    if (draw.kind !== "draws") throw new Error("no draw");
    expect(draw.drained).toMatchObject({ remaining: 0, consumed: [{ report: "r1", used: 3 }] });
    expect(draw.drained.drawnUntil).toBe(now.toISOString());
  });

  it("answers what the report took before, whatever it asks now, never giving units back", () => {
    expect(drawOf(tx(10), 5, "r1", now, 3, false)).toEqual({ kind: "taken before", took: 3, leftover: 2 });
    expect(drawOf(tx(10), 2, "r1", now, 3, true)).toEqual({ kind: "taken before", took: 3, leftover: 0 });
    expect(drawOf(tx(10), 5, "r1", now, 0, false)).toEqual({ kind: "taken before", took: 0, leftover: 5 });
  });

  it("passes over one whose purchase has not taken effect, and hands all on from one it cannot draw", () => {
    expect(drawOf(tx(10), 5, "r1", now, null, true)).toEqual({ kind: "passed over", took: 0, leftover: 5 });
    const ended = tx(4, { endedAt: now.toISOString() });
    expect(drawOf(ended, 5, "r1", now, null, false)).toEqual({ kind: "undrawable", took: null, leftover: 5 });
  });

  it("keeps a depletable's latest draw time when an older report draws after a younger one", () => {
    const later = "2026-12-03T12:00:05.000Z";
    const draw = drawOf(tx(10, { drawnUntil: later }), 1, "r0", now, null, false);
    expect(draw.kind === "draws" && draw.drained.drawnUntil).toBe(later);
  });
});

describe("mayStillDraw: how long after its first run a report may draw", () => {
  it("draws up to and including 24 hours after its first run began, never a millisecond later", () => {
    const since = new Date("2026-12-03T12:00:00.000Z");
    const later = (ms: number) => new Date(since.getTime() + ms);
    expect(REPORT_DRAWS_FOR_MS).toBe(24 * 3_600_000);
    expect(mayStillDraw(since, since)).toBe(true);
    expect(mayStillDraw(since, later(REPORT_DRAWS_FOR_MS))).toBe(true);
    expect(mayStillDraw(since, later(REPORT_DRAWS_FOR_MS + 1))).toBe(false);
  });
});
