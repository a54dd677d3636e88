import { describe, expect, it } from "vitest";
import { backoff } from "../../src/domain/retry";

describe("backoff", () => {
  it("starts at the first wait, doubles on each failure in a row, and stops at the bound", () => {
    expect([0, 1, 2, 3, 4, 5, 6, 20].map((n) => backoff(5_000, 300_000, n))).toEqual([
      5_000, 10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000,
    ]);
    // The operations queue's redeliveries, in seconds from their first attempt.
    expect([1, 2, 8, 9, 30].map((attempts) => backoff(1, 300, attempts))).toEqual([2, 4, 256, 300, 300]);
  });
});
