import { describe, expect, it } from "vitest";
import { allowance, type Spending, shareOfInvocation } from "../../src/domain/budget";

/** A step's share of one invocation's D1 queries and subrequests (domain/budget.ts). */

describe("allowance", () => {
  it("counts only what was spent since it was taken, and none is left once either figure reaches its share", () => {
    const spent: Spending = { queries: 500, subrequests: 900 };
    const left = allowance(spent, { queries: 10, subrequests: 20 });
    expect(left.left).toBe(true);
    spent.queries += 9;
    spent.subrequests += 19;
    expect(left.left).toBe(true);
    spent.queries += 1;
    expect(left.left).toBe(false);
  });

  it("none is left once the subrequests reach their share, the queries still under theirs", () => {
    const spent: Spending = { queries: 0, subrequests: 0 };
    const left = allowance(spent, { queries: 10, subrequests: 20 });
    spent.subrequests = 20;
    expect(left.left).toBe(false);
  });

  it("a share is that fraction of both figures", () => {
    expect(shareOfInvocation(0.1)).toEqual({ queries: 100, subrequests: 1000 });
  });
});
