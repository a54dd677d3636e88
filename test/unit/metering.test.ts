import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  chargeFor,
  isRunning,
  type RunInterval,
  runInstant,
  splitAt,
  start,
  stop,
} from "../../src/domain/metering";

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const T0 = Date.UTC(2025, 0, 1);

const closed = (startMs: number, endMs: number, quantity = 1): RunInterval => ({
  start: startMs,
  end: endMs,
  quantity,
});
const open = (startMs: number, quantity = 1): RunInterval => ({ start: startMs, end: null, quantity });

describe("chargeFor", () => {
  it("charges quantity × running time × hourly price: 2 units × 90 minutes × 120/h = 360", () => {
    expect(chargeFor([closed(T0, T0 + 90 * MINUTE, 2)], 120n, T0 + 2 * HOUR)).toEqual({
      seconds: 5400n,
      quantitySeconds: 10800n,
      chargeMinor: 360n,
    });
  });

  it("charges nothing for an empty history", () => {
    expect(chargeFor([], 120n, T0)).toEqual({ seconds: 0n, quantitySeconds: 0n, chargeMinor: 0n });
  });

  it.each([
    [1, 0n],
    [1799, 0n],
    [1800, 1n],
    [3600, 1n],
    [5399, 1n],
    [5400, 2n],
  ])("rounds %i s at 1 minor/hour half-up to %s", (seconds, expected) => {
    expect(chargeFor([closed(T0, T0 + seconds * SECOND)], 1n, T0 + HOUR * 10).chargeMinor).toBe(expected);
  });

  it("rounds once on the total, not per interval", () => {
    // Per interval, 1800 s at 1/h would round to 1 each, 2 in all; the true total is exactly 1.
    const halves = [closed(T0, T0 + 1800 * SECOND), closed(T0 + HOUR, T0 + HOUR + 1800 * SECOND)];
    expect(chargeFor(halves, 1n, T0 + 2 * HOUR).chargeMinor).toBe(1n);
    // Per interval, 1200 s would round to 0 each; together they make a full hour.
    const thirds = [0, 1, 2].map((i) => closed(T0 + i * HOUR, T0 + i * HOUR + 1200 * SECOND));
    expect(chargeFor(thirds, 1n, T0 + 3 * HOUR).chargeMinor).toBe(1n);
  });

  it("charges a running interval up to now", () => {
    const history = [closed(T0, T0 + HOUR, 1), open(T0 + 2 * HOUR, 3)];
    expect(chargeFor(history, 60n, T0 + 2 * HOUR + 30 * MINUTE)).toEqual({
      seconds: 5400n,
      quantitySeconds: 3600n + 3n * 1800n,
      chargeMinor: 60n + 90n,
    });
  });

  it("does not charge time after now, even inside a closed interval", () => {
    expect(chargeFor([closed(T0, T0 + 2 * HOUR)], 60n, T0 + HOUR).chargeMinor).toBe(60n);
    expect(chargeFor([open(T0 + HOUR)], 60n, T0).seconds).toBe(0n);
  });

  it("counts absolute second boundaries crossed, not each interval's truncated length", () => {
    // 2 ms that straddle a second boundary count one second; 998 ms inside one second count none.
    expect(chargeFor([closed(T0 + 999, T0 + 1001)], 3600n, T0 + HOUR).seconds).toBe(1n);
    expect(chargeFor([closed(T0 + 1001, T0 + 1999)], 3600n, T0 + HOUR).seconds).toBe(0n);
    // Before 1970 the boundary is still the floor, not truncation towards zero.
    expect(chargeFor([closed(-1001, -999)], 3600n, 0).seconds).toBe(1n);
    expect(chargeFor([closed(-1999, -1001)], 3600n, 0).seconds).toBe(0n);
  });

  it("stays exact far beyond 2^53", () => {
    const quantity = Number.MAX_SAFE_INTEGER;
    const seconds = 10n ** 9n;
    const price = 10n ** 15n + 7n;
    const history = [closed(0, Number(seconds) * SECOND, quantity)];
    const exact = BigInt(quantity) * seconds * price;
    const result = chargeFor(history, price, Number(seconds) * SECOND);
    expect(result.quantitySeconds).toBe(BigInt(quantity) * seconds);
    expect(result.chargeMinor).toBe((exact + 1800n) / 3600n);
    // The float computation drifts by many units, which the exact one must not.
    expect(result.chargeMinor).not.toBe(
      BigInt(Math.round((quantity * Number(seconds) * Number(price)) / 3600)),
    );
  });

  it("finds second boundaries exactly at the top of the safe-integer range", () => {
    const last = Number.MAX_SAFE_INTEGER;
    expect(chargeFor([closed(last - 1, last)], 3600n, last).seconds).toBe(0n);
    expect(chargeFor([closed(last - 992, last)], 3600n, last).seconds).toBe(1n);
  });

  it("rejects a negative price", () => {
    expect(() => chargeFor([closed(T0, T0 + HOUR)], -1n, T0 + HOUR)).toThrow(RangeError);
  });

  it.each<[string, RunInterval[]]>([
    ["overlapping intervals", [closed(T0, T0 + HOUR), closed(T0 + HOUR - 1, T0 + 2 * HOUR)]],
    ["an interval ending before it starts", [closed(T0 + 1, T0)]],
    ["an open interval that is not the last", [open(T0), closed(T0 + HOUR, T0 + 2 * HOUR)]],
    ["a negative quantity", [closed(T0, T0 + HOUR, -1)]],
    ["a fractional quantity", [closed(T0, T0 + HOUR, 1.5)]],
    ["a fractional instant", [closed(T0 + 0.5, T0 + HOUR)]],
    ["a NaN instant", [closed(T0, Number.NaN)]],
  ])("rejects a history with %s", (_, history) => {
    expect(() => chargeFor(history, 1n, T0 + 3 * HOUR)).toThrow(RangeError);
  });

  it("rejects a non-integer now", () => {
    expect(() => chargeFor([], 1n, Number.NaN)).toThrow(RangeError);
  });
});

describe("transitions", () => {
  it("start opens an interval with the quantity", () => {
    expect(start([], T0, 2)).toEqual([open(T0, 2)]);
    expect(start([closed(T0, T0 + HOUR)], T0 + 2 * HOUR, 3)).toEqual([
      closed(T0, T0 + HOUR),
      open(T0 + 2 * HOUR, 3),
    ]);
  });

  it("start on a running subscription changes nothing, not even the quantity", () => {
    const history = [open(T0, 2)];
    expect(start(history, T0 + HOUR, 5)).toEqual(history);
  });

  it("stop closes the open interval", () => {
    expect(stop([open(T0, 2)], T0 + HOUR)).toEqual([closed(T0, T0 + HOUR, 2)]);
  });

  it("stop on a stopped subscription changes nothing", () => {
    expect(stop([], T0)).toEqual([]);
    const history = [closed(T0, T0 + HOUR)];
    expect(stop(history, T0 + 2 * HOUR)).toEqual(history);
  });

  it("splitAt closes the open interval and opens one with the new quantity", () => {
    expect(splitAt([open(T0, 2)], T0 + HOUR, 5)).toEqual([closed(T0, T0 + HOUR, 2), open(T0 + HOUR, 5)]);
  });

  it("splitAt on a stopped subscription changes nothing", () => {
    const history = [closed(T0, T0 + HOUR, 2)];
    expect(splitAt(history, T0 + 2 * HOUR, 5)).toEqual(history);
    expect(splitAt([], T0, 5)).toEqual([]);
  });

  it("bills each quantity for its own seconds across a change", () => {
    const history = splitAt(start([], T0, 1), T0 + HOUR, 4);
    expect(chargeFor(stop(history, T0 + 2 * HOUR), 10n, T0 + 3 * HOUR).chargeMinor).toBe(10n + 40n);
  });

  it("never mutates its input", () => {
    const running = Object.freeze([Object.freeze(open(T0, 2))]);
    const stopped = Object.freeze([Object.freeze(closed(T0, T0 + HOUR, 2))]);
    expect(() => start(running, T0 + HOUR, 1)).not.toThrow();
    expect(() => start(stopped, T0 + 2 * HOUR, 1)).not.toThrow();
    expect(() => stop(running, T0 + HOUR)).not.toThrow();
    expect(() => splitAt(running, T0 + HOUR, 3)).not.toThrow();
    expect(running).toEqual([open(T0, 2)]);
    expect(stopped).toEqual([closed(T0, T0 + HOUR, 2)]);
  });

  it("accepts a transition at the last recorded instant", () => {
    expect(start([closed(T0, T0 + HOUR)], T0 + HOUR, 1)).toEqual([closed(T0, T0 + HOUR), open(T0 + HOUR)]);
    expect(stop([open(T0)], T0)).toEqual([closed(T0, T0)]);
  });

  describe("time going backwards is rejected", () => {
    const running = [closed(T0, T0 + HOUR), open(T0 + 2 * HOUR)];
    const stopped = [closed(T0, T0 + HOUR)];
    it.each<[string, () => unknown]>([
      ["start on a stopped subscription", () => start(stopped, T0 + HOUR - 1, 1)],
      ["start on a running one", () => start(running, T0 + 2 * HOUR - 1, 1)],
      ["stop on a running one", () => stop(running, T0 + 2 * HOUR - 1)],
      ["stop on a stopped one", () => stop(stopped, T0 + HOUR - 1)],
      ["splitAt on a running one", () => splitAt(running, T0 + 2 * HOUR - 1, 3)],
      ["splitAt on a stopped one", () => splitAt(stopped, T0 + HOUR - 1, 3)],
    ])("%s", (_, transition) => {
      expect(transition).toThrow(RangeError);
    });
  });

  it("rejects an invalid quantity", () => {
    expect(() => start([], T0, -1)).toThrow(RangeError);
    expect(() => splitAt([open(T0)], T0 + 1, 0.5)).toThrow(RangeError);
  });

  it("isRunning tells whether the last interval is open", () => {
    expect(isRunning([])).toBe(false);
    expect(isRunning([closed(T0, T0 + HOUR)])).toBe(false);
    expect(isRunning([closed(T0, T0 + HOUR), open(T0 + 2 * HOUR)])).toBe(true);
  });
});

describe("runInstant", () => {
  it("records a transition now, or at the last one if that is later: history never goes back", () => {
    const now = new Date(T0 + HOUR);
    expect(runInstant([], now)).toBe(T0 + HOUR);
    expect(runInstant([closed(T0, T0 + 30 * MINUTE)], now)).toBe(T0 + HOUR);
    expect(runInstant([closed(T0, T0 + 2 * HOUR)], now)).toBe(T0 + 2 * HOUR);
    expect(runInstant([open(T0 + 3 * HOUR)], now)).toBe(T0 + 3 * HOUR);
  });
});

describe("properties", () => {
  // Instants with sub-second parts, so that truncation and boundary counting actually differ.
  const piece = fc.record({
    gap: fc.integer({ min: 0, max: 3 * HOUR }),
    length: fc.integer({ min: 0, max: 3 * HOUR }),
    quantity: fc.integer({ min: 0, max: 1000 }),
  });
  const history = (options: { running?: boolean } = {}) =>
    fc
      .tuple(
        fc.integer({ min: -HOUR, max: 10 * 365 * 24 * HOUR }),
        fc.array(piece, { minLength: options.running ? 1 : 0, maxLength: 8 }),
        options.running === undefined ? fc.boolean() : fc.constant(options.running),
      )
      .map(([origin, pieces, running]) => {
        let t = origin;
        const intervals: RunInterval[] = pieces.map(({ gap, length, quantity }) => {
          const interval = closed(t + gap, t + gap + length, quantity);
          t = t + gap + length;
          return interval;
        });
        const last = intervals.at(-1);
        if (running && last) last.end = null;
        return { intervals, lastInstant: t };
      });
  const price = fc.bigInt({ min: 0n, max: 10n ** 6n });
  const horizon = fc.integer({ min: 0, max: 30 * HOUR });

  it("splitting any interval at any instant inside it, same quantity, never changes the charge", () => {
    fc.assert(
      fc.property(
        history().filter(({ intervals }) => intervals.length > 0),
        fc.nat(),
        fc.double({ min: 0, max: 1, noNaN: true }),
        price,
        fc.integer({ min: -2 * HOUR, max: 30 * HOUR }),
        ({ intervals, lastInstant }, which, where, unitPrice, afterLast) => {
          const index = which % intervals.length;
          const target = intervals[index]!;
          const now = lastInstant + afterLast;
          const end = target.end ?? Math.max(now, target.start);
          const at = target.start + Math.floor(where * (end - target.start));
          const split = [
            ...intervals.slice(0, index),
            { ...target, end: at },
            { ...target, start: at },
            ...intervals.slice(index + 1),
          ];
          expect(chargeFor(split, unitPrice, now)).toEqual(chargeFor(intervals, unitPrice, now));
        },
      ),
    );
  });

  it("a quantity change to the same quantity never changes the charge", () => {
    fc.assert(
      fc.property(history({ running: true }), horizon, horizon, price, (h, change, after, unitPrice) => {
        const at = h.lastInstant + change;
        const quantity = h.intervals.at(-1)!.quantity;
        const now = at + after;
        expect(chargeFor(splitAt(h.intervals, at, quantity), unitPrice, now)).toEqual(
          chargeFor(h.intervals, unitPrice, now),
        );
      }),
    );
  });

  it("the charge of a running subscription never decreases as now advances", () => {
    fc.assert(
      fc.property(history({ running: true }), horizon, horizon, price, (h, a, b, unitPrice) => {
        const earlier = h.lastInstant + Math.min(a, b) - HOUR;
        const later = h.lastInstant + Math.max(a, b) - HOUR;
        const before = chargeFor(h.intervals, unitPrice, earlier);
        const after = chargeFor(h.intervals, unitPrice, later);
        expect(after.seconds).toBeGreaterThanOrEqual(before.seconds);
        expect(after.chargeMinor).toBeGreaterThanOrEqual(before.chargeMinor);
      }),
    );
  });

  it("the charge is the exact amount rounded half-up", () => {
    fc.assert(
      fc.property(history(), horizon, price, (h, after, unitPrice) => {
        const { quantitySeconds, chargeMinor } = chargeFor(h.intervals, unitPrice, h.lastInstant + after);
        // chargeMinor − exact lies in (−½, ½], scaled by 2 × 3600 to stay in integers.
        const error = 2n * (chargeMinor * 3600n - quantitySeconds * unitPrice);
        expect(error > -3600n && error <= 3600n).toBe(true);
      }),
    );
  });

  it("a running subscription accrues exactly the second boundaries crossed", () => {
    fc.assert(
      fc.property(fc.integer({ min: -HOUR, max: 10 * HOUR }), horizon, (startMs, elapsed) => {
        const { seconds } = chargeFor([open(startMs, 1)], 1n, startMs + elapsed);
        // Independently: count the multiples of 1000 in (start, start + elapsed].
        let crossed = 0n;
        const first = Math.ceil((startMs + 1) / SECOND) * SECOND;
        for (let boundary = first; boundary <= startMs + elapsed; boundary += SECOND) crossed += 1n;
        expect(seconds).toBe(crossed);
      }),
    );
  });
});
