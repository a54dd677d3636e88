import { describe, expect, it } from "vitest";
import { eachWithin } from "../../src/domain/concurrency";

describe("eachWithin", () => {
  it("works on every item, never more than the limit at once, starting the next as one finishes", async () => {
    let inFlight = 0;
    let most = 0;
    const done: number[] = [];
    const items = Array.from({ length: 23 }, (_, i) => i);
    await eachWithin(items, 5, async (i) => {
      inFlight++;
      most = Math.max(most, inFlight);
      // Uneven durations: a lane that finishes early takes the next item without waiting for the others.
      await new Promise((resolve) => setTimeout(resolve, (i % 4) * 3));
      done.push(i);
      inFlight--;
    });
    expect(most).toBe(5);
    expect(done.sort((a, b) => a - b)).toEqual(items);
  });

  it("runs nothing for no items, and all at once when the limit is above their number", async () => {
    let most = 0;
    let inFlight = 0;
    await eachWithin([], 4, async () => {
      throw new Error("no item to work on");
    });
    await eachWithin([1, 2, 3], 10, async () => {
      inFlight++;
      most = Math.max(most, inFlight);
      await new Promise((resolve) => setTimeout(resolve, 5));
      inFlight--;
    });
    expect(most).toBe(3);
  });
});
