import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  accept,
  groupByHolder,
  type Holding,
  issue,
  mergeProvisions,
  pendingQuantity,
  reject,
  reportedUsage,
} from "../../src/domain/quota";

const h = (limit: number, usageMin = 0, usageMax = usageMin): Holding => ({ limit, usageMin, usageMax });

describe("issue", () => {
  it("raises usage_max for a positive quantity within the limit", () => {
    expect(issue(h(5, 1, 2), 3, false)).toEqual({ ok: true, holding: h(5, 1, 5) });
  });

  it("fails with NoCapacityError past the limit, reporting limit and usage_max", () => {
    expect(issue(h(5, 1, 2), 4, false)).toEqual({
      ok: false,
      failure: { name: "NoCapacityError", limit: 5, usage: 2 },
    });
  });

  it("force waives the limit but not the safe-integer range", () => {
    expect(issue(h(5), 10, true)).toEqual({ ok: true, holding: h(5, 0, 10) });
    expect(issue(h(5, 0, Number.MAX_SAFE_INTEGER), 1, true).ok).toBe(false);
  });

  it("lowers usage_min for a release and fails with NoQuantityError below zero", () => {
    expect(issue(h(5, 3, 4), -3, false)).toEqual({ ok: true, holding: h(5, 0, 4) });
    expect(issue(h(5, 3, 4), -4, true)).toEqual({
      ok: false,
      failure: { name: "NoQuantityError", limit: 0, usage: 3 },
    });
  });

  it("reports usage as usage_max and pending as the window", () => {
    expect(reportedUsage(h(9, 2, 7))).toBe(7);
    expect(pendingQuantity(h(9, 2, 7))).toBe(5);
  });
});

describe("accept and reject", () => {
  it("accept narrows towards the issued side, reject undoes the issue", () => {
    const issued = issue(h(10, 2, 2), 3, false);
    if (!issued.ok) throw new Error("issue failed");
    expect(accept(issued.holding, 3)).toEqual(h(10, 5, 5));
    expect(reject(issued.holding, 3)).toEqual(h(10, 2, 2));
    const released = issue(h(10, 5, 5), -2, false);
    if (!released.ok) throw new Error("release failed");
    expect(accept(released.holding, -2)).toEqual(h(10, 3, 3));
    expect(reject(released.holding, -2)).toEqual(h(10, 5, 5));
  });
});

describe("provisions", () => {
  it("sums provisions of one holding in first-seen order", () => {
    const p = (holder: string, resource: string, quantity: number) => ({
      holder,
      source: "system",
      resource,
      quantity,
    });
    expect(mergeProvisions([p("a", "vm", 1), p("b", "vm", 2), p("a", "vm", 3)])).toEqual([
      p("a", "vm", 4),
      p("b", "vm", 2),
    ]);
    expect(mergeProvisions([p("a", "vm", Number.MAX_SAFE_INTEGER), p("a", "vm", 1)])).toBeNull();
    // Only the total counts: a partial sum past the range on the way is no refusal.
    expect(
      mergeProvisions([p("a", "vm", 1), p("a", "vm", Number.MAX_SAFE_INTEGER), p("a", "vm", -2)]),
    ).toEqual([p("a", "vm", Number.MAX_SAFE_INTEGER - 1)]);
  });

  it("groups by holder in sorted order", () => {
    const p = (holder: string) => ({ holder, source: "system", resource: "vm", quantity: 1 });
    expect(groupByHolder([p("c"), p("a"), p("c")]).map(([holder, list]) => [holder, list.length])).toEqual([
      ["a", 1],
      ["c", 2],
    ]);
  });
});

/** A random sequence of issues, then a random resolution of every pending one. */
const scenario = fc.record({
  limit: fc.integer({ min: 0, max: 1000 }),
  steps: fc.array(
    fc.record({
      quantity: fc.integer({ min: -300, max: 300 }),
      force: fc.boolean(),
      resolveWith: fc.constantFrom("accept", "reject", "later"),
      newLimit: fc.option(fc.integer({ min: 0, max: 1000 })),
    }),
    { maxLength: 60 },
  ),
});

describe("properties", () => {
  it("usage_min <= usage_max and neither goes below zero, whatever happens", () => {
    fc.assert(
      fc.property(scenario, ({ limit, steps }) => {
        let holding = h(limit);
        const pending: number[] = [];
        for (const step of steps) {
          const result = issue(holding, step.quantity, step.force);
          if (result.ok) {
            holding = result.holding;
            if (step.resolveWith === "accept") holding = accept(holding, step.quantity);
            else if (step.resolveWith === "reject") holding = reject(holding, step.quantity);
            else pending.push(step.quantity);
          }
          if (step.newLimit !== null) holding = { ...holding, limit: step.newLimit };
          expect(holding.usageMin).toBeGreaterThanOrEqual(0);
          expect(holding.usageMin).toBeLessThanOrEqual(holding.usageMax);
        }
        for (const q of pending) holding = accept(holding, q);
        expect(holding.usageMin).toBe(holding.usageMax);
      }),
    );
  });

  it("a pending commission can always be accepted or rejected later, even after the limit fell", () => {
    fc.assert(
      fc.property(scenario, fc.boolean(), ({ limit, steps }, acceptAll) => {
        let holding = h(limit);
        const pending: number[] = [];
        for (const step of steps) {
          const result = issue(holding, step.quantity, step.force);
          if (result.ok) {
            holding = result.holding;
            pending.push(step.quantity);
          }
          if (step.newLimit !== null) holding = { ...holding, limit: step.newLimit };
        }
        const committed = pending.reduce((sum, q) => sum + q, 0);
        for (const q of pending) holding = acceptAll ? accept(holding, q) : reject(holding, q);
        expect(holding.usageMin).toBe(holding.usageMax);
        expect(holding.usageMax).toBe(acceptAll ? committed : 0);
        expect(holding.usageMax).toBeGreaterThanOrEqual(0);
      }),
    );
  });

  it("without force, an accepted issue never takes usage past the limit", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 100 }),
        fc.array(fc.integer({ min: 0, max: 30 })),
        (limit, qs) => {
          let holding = h(limit);
          for (const q of qs) {
            const result = issue(holding, q, false);
            if (result.ok) holding = accept(result.holding, q);
          }
          expect(holding.usageMax).toBeLessThanOrEqual(limit);
        },
      ),
    );
  });
});
