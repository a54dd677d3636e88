import { describe, expect, it } from "vitest";
import { ttlCache } from "../../src/domain/ttl-cache";

describe("ttlCache", () => {
  it("keeps a loaded value until its time is up", async () => {
    const cache = ttlCache<number>(60_000);
    let loads = 0;
    const load = async () => ++loads;
    expect(await cache("k", load)).toBe(1);
    expect(await cache("k", load)).toBe(1);
    cache.forget("k");
    expect(await cache("k", load)).toBe(2);
  });

  it("does not remember a value loaded across a forget: a revocation on its way is not undone", async () => {
    const cache = ttlCache<string>(60_000);
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    // A lookup reads the row as it was, then waits; meanwhile the row is revoked and forgotten.
    const stale = cache("k", async () => {
      await held;
      return "before";
    });
    cache.forget("k");
    release();
    expect(await stale).toBe("before");
    expect(await cache("k", async () => "after")).toBe("after");
  });

  it("many: the same for values loaded together", async () => {
    const cache = ttlCache<string>(60_000);
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const stale = cache.many(["a", "b"], async (keys) => {
      await held;
      return new Map(keys.map((k) => [k, `${k}-before`]));
    });
    cache.forgetWhere((v) => v.startsWith("a"));
    release();
    expect(await stale).toEqual(
      new Map([
        ["a", "a-before"],
        ["b", "b-before"],
      ]),
    );
    const again = await cache.many(["a", "b"], async (keys) => new Map(keys.map((k) => [k, `${k}-after`])));
    expect(again).toEqual(
      new Map([
        ["a", "a-after"],
        ["b", "b-after"],
      ]),
    );
  });
});
