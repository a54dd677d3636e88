import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { blockOf, homeOf, SERIAL_BLOCK, serialIn, stepFinish } from "../../src/domain/commissions";

describe("serials", () => {
  it("a serial names its block, and serials grow with the block and the offset", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 2 ** 40 }),
        fc.integer({ min: 0, max: SERIAL_BLOCK - 1 }),
        (block, offset) => {
          const serial = serialIn(block, offset);
          expect(Number.isSafeInteger(serial)).toBe(true);
          expect(blockOf(serial)).toBe(block);
          if (offset < SERIAL_BLOCK - 1) expect(serialIn(block, offset + 1)).toBe(serial + 1);
          expect(serialIn(block + 1, 0)).toBeGreaterThan(serial);
        },
      ),
    );
  });
});

describe("homeOf", () => {
  it("is the first holder in the fixed order, whatever order the provisions came in", () => {
    expect(homeOf(["b", "c", "a"], "svc")).toBe("a");
    expect(homeOf(["a"], null)).toBe("a");
  });

  it("is a ledger of the issuer's for a commission that holds nothing", () => {
    expect(homeOf([], "svc")).toBe("service:svc");
    expect(homeOf([], null)).toBe("service:stratus");
  });
});

describe("stepFinish: a step across ledgers whose request died", () => {
  it("rolls an issue back, completes a decision, and is no step for a settled or pending commission", () => {
    expect(stepFinish("issuing")).toEqual({ decision: "reject", final: "failed" });
    expect(stepFinish("failing")).toEqual({ decision: "reject", final: "failed" });
    expect(stepFinish("accepting")).toEqual({ decision: "accept", final: "accepted" });
    expect(stepFinish("rejecting")).toEqual({ decision: "reject", final: "rejected" });
    for (const state of ["pending", "accepted", "rejected", "failed"] as const)
      expect(stepFinish(state)).toBeNull();
  });
});
