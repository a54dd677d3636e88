import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isClosed, monthOf, parseMonth, previousMonth } from "../../src/domain/charges";
import { chargeFor, type RunInterval, runInstant, splitAt, start, stop } from "../../src/domain/metering";
import {
  accruing,
  closeMonthAt,
  lineAmountMinor,
  linesClosedBy,
  meteredCharge,
  type SettledRuns,
  settleRuns,
  type UsageLine,
  usageLines,
} from "../../src/domain/usage";

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const T0 = Date.UTC(2027, 2, 10, 9);
const ID = "sub";

const closed = (from: number, to: number, quantity = 1): RunInterval => ({ start: from, end: to, quantity });
const sum = (lines: readonly UsageLine[]) => lines.reduce((n, l) => n + l.amountMinor, 0n);

describe("usage lines", () => {
  it("bills a closed interval as one line: 2 units × 90 minutes × 1.20/h = 3.60", () => {
    expect(usageLines(ID, [closed(T0, T0 + 90 * MINUTE, 2)], 120n)).toEqual([
      {
        key: `usage:${ID}:${T0}`,
        start: T0,
        end: T0 + 90 * MINUTE,
        quantity: 2,
        seconds: 5400n,
        amountMinor: 360n,
      },
    ]);
  });

  it("rounds a month's lines as one: each is the running total rounded after it, less before it", () => {
    expect(lineAmountMinor(1, 1800n, 1n)).toBe(1n);
    expect(lineAmountMinor(1, 1799n, 1n)).toBe(0n);
    // Two half-hours of 0.5 each: 1 then 0, the sum rounded once, as one run of an hour is.
    const halves = [closed(T0, T0 + 30 * MINUTE), closed(T0 + HOUR, T0 + 90 * MINUTE)];
    expect(usageLines(ID, halves, 1n).map((l) => l.amountMinor)).toEqual([1n, 0n]);
    expect(chargeFor(halves, 1n, T0 + 2 * HOUR).chargeMinor).toBe(1n);
    // Ten runs of 6.5 s at 2.50/h: alone, each rounds to nothing; together they cost their 65 s.
    const short = Array.from({ length: 10 }, (_, i) => closed(T0 + i * MINUTE, T0 + i * MINUTE + 6500));
    const seconds = usageLines(ID, short, 250n).reduce((n, l) => n + l.seconds, 0n);
    expect(lineAmountMinor(1, 6n, 250n) + lineAmountMinor(1, 7n, 250n)).toBe(0n);
    expect(sum(usageLines(ID, short, 250n))).toBe(lineAmountMinor(1, seconds, 250n));
    expect(sum(usageLines(ID, short, 250n))).toBeGreaterThan(0n);
  });

  it("cuts an interval at each UTC month boundary, each piece a line of its month", () => {
    const from = Date.UTC(2027, 0, 31, 23);
    const to = Date.UTC(2027, 2, 1, 1);
    const lines = usageLines(ID, [closed(from, to, 3)], 100n);
    expect(lines.map((l) => [l.start, l.end, l.seconds, l.amountMinor])).toEqual([
      [from, Date.UTC(2027, 1, 1), 3600n, 300n],
      [Date.UTC(2027, 1, 1), Date.UTC(2027, 2, 1), 28n * 86_400n, 28n * 24n * 300n],
      [Date.UTC(2027, 2, 1), to, 3600n, 300n],
    ]);
    expect(lines.map((l) => l.key)).toEqual(lines.map((l) => `usage:${ID}:${l.start}`));
  });

  it("writes no line for a piece without a running second", () => {
    expect(usageLines(ID, [closed(T0, T0), closed(T0 + 1001, T0 + 1999)], 3600n)).toEqual([]);
    expect(usageLines(ID, [closed(T0, T0), closed(T0, T0 + HOUR)], 1n).map((l) => l.key)).toEqual([
      `usage:${ID}:${T0}`,
    ]);
  });

  it("writes the lines of the intervals a change closes, and only those", () => {
    const running = start([], T0, 2);
    expect(linesClosedBy(ID, [], running, 60n)).toEqual([]);
    const split = splitAt(running, T0 + HOUR, 5);
    expect(linesClosedBy(ID, running, split, 60n).map((l) => [l.start, l.quantity, l.amountMinor])).toEqual([
      [T0, 2, 120n],
    ]);
    const stopped = stop(split, T0 + 2 * HOUR);
    expect(linesClosedBy(ID, split, stopped, 60n).map((l) => [l.start, l.quantity, l.amountMinor])).toEqual([
      [T0 + HOUR, 5, 300n],
    ]);
    expect(linesClosedBy(ID, stopped, stopped, 60n)).toEqual([]);
  });

  it("accrues the running interval up to now, rounded as its lines will be", () => {
    const from = Date.UTC(2027, 0, 31, 23, 30);
    const running = start([closed(from - DAY, from - DAY + HOUR)], from, 1);
    const now = Date.UTC(2027, 1, 1, 0, 30);
    // 30 minutes in January, 30 in February: two pieces of 0.5, each rounded up.
    expect(accruing(ID, running, 1n, now)).toEqual({ seconds: 3600n, amountMinor: 2n });
    expect(meteredCharge(ID, running, 1n, now)).toBe(1n + 2n);
    expect(sum(linesClosedBy(ID, running, stop(running, now), 1n))).toBe(2n);
  });

  it("closes a month by splitting a running interval at its end; again, or when stopped, nothing", () => {
    const boundary = Date.UTC(2027, 1, 1);
    const running = start([], boundary - HOUR, 2);
    const closedMonth = closeMonthAt(running, boundary);
    expect(closedMonth).toEqual([
      closed(boundary - HOUR, boundary, 2),
      { start: boundary, end: null, quantity: 2 },
    ]);
    expect(closeMonthAt(closedMonth, boundary)).toBe(closedMonth);
    const stopped = stop(running, boundary + HOUR);
    expect(closeMonthAt(stopped, boundary)).toBe(stopped);
    const later = start([], boundary + MINUTE, 1);
    expect(closeMonthAt(later, boundary)).toBe(later);
  });
});

describe("months", () => {
  it("names the month an instant is in, and the one before", () => {
    const march = monthOf(new Date(Date.UTC(2027, 2, 31, 23, 59, 59, 999)));
    expect(march).toEqual(parseMonth("2027-03"));
    expect(previousMonth(march)).toEqual(parseMonth("2027-02"));
    expect(previousMonth(monthOf(new Date(Date.UTC(2027, 0, 1))))).toEqual(parseMonth("2026-12"));
  });

  it("closes a month once it is over and the cron closed it, or a later month", () => {
    const feb = parseMonth("2027-02");
    if (!feb) throw new Error("unreachable");
    const after = new Date(Date.UTC(2027, 2, 1));
    expect(isClosed(feb, after, "2027-02")).toBe(true);
    expect(isClosed(feb, after, "2027-05")).toBe(true);
    expect(isClosed(feb, after, "2027-01")).toBe(false);
    expect(isClosed(feb, after, null)).toBe(false);
    expect(isClosed(feb, new Date(after.getTime() - 1), "2027-02")).toBe(false);
  });
});

/** What the object does to a cloud, step by step, at instants it decides (`runInstant`). */
type Step =
  | { kind: "wait"; ms: number }
  | { kind: "start" }
  | { kind: "stop" }
  | { kind: "amount"; quantity: number }
  | { kind: "cancel" }
  | { kind: "month end" };

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ kind: fc.constant("wait" as const), ms: fc.integer({ min: 0, max: 40 * DAY }) }),
  fc.record({ kind: fc.constant("wait" as const), ms: fc.integer({ min: 0, max: 2 * HOUR }) }),
  fc.constant({ kind: "start" as const }),
  fc.constant({ kind: "stop" as const }),
  fc.record({ kind: fc.constant("amount" as const), quantity: fc.integer({ min: 1, max: 50 }) }),
  fc.constant({ kind: "cancel" as const }),
  fc.constant({ kind: "month end" as const }),
);

interface Cloud {
  runs: RunInterval[];
  amount: number;
  ended: boolean;
  now: number;
  lines: UsageLine[];
  settled?: SettledRuns | undefined;
}

/**
 * Plays `steps` on a new cloud as the object would, collecting the lines each change writes. The
 * cron's month close runs at the first instant after the month of the time reached, twice (a
 * redelivered message), and only if `cron` is on.
 */
function play(steps: readonly Step[], begin: number, price: bigint, cron: boolean, settle = false): Cloud {
  const cloud: Cloud = { runs: [], amount: 1, ended: false, now: begin, lines: [] };
  const apply = (next: RunInterval[]) => {
    cloud.lines.push(...linesClosedBy(ID, cloud.runs, next, price));
    cloud.runs = next;
    // As the object stores it: without its months wholly billed (`withSettledRuns`).
    if (settle)
      ({ intervals: cloud.runs, settled: cloud.settled } = settleRuns(ID, next, price, cloud.settled));
  };
  for (const s of steps) {
    if (s.kind === "wait") {
      cloud.now += s.ms;
      continue;
    }
    if (cloud.ended) continue;
    const at = runInstant(cloud.runs, new Date(cloud.now));
    if (s.kind === "start") apply(start(cloud.runs, at, cloud.amount));
    if (s.kind === "stop") apply(stop(cloud.runs, at));
    if (s.kind === "amount") {
      apply(cloud.runs.at(-1)?.end === null ? splitAt(cloud.runs, at, s.quantity) : cloud.runs);
      cloud.amount = s.quantity;
    }
    if (s.kind === "cancel") {
      apply(stop(cloud.runs, at));
      cloud.ended = true;
    }
    if (s.kind === "month end" && cron) {
      const boundary = monthOf(new Date(cloud.now)).start.getTime();
      for (let i = 0; i < 2; i++) apply(closeMonthAt(cloud.runs, boundary));
      // Whatever still runs, runs unbilled only since the month began.
      const open = cloud.runs.at(-1);
      if (open?.end === null) expect(open.start).toBeGreaterThanOrEqual(boundary);
    }
  }
  return cloud;
}

const history = fc.record({
  steps: fc.array(step, { maxLength: 40 }),
  begin: fc.integer({ min: Date.UTC(2026, 0, 1), max: Date.UTC(2030, 0, 1) }),
  price: fc.bigInt({ min: 0n, max: 100_000n }),
});

describe("usage lines, whatever happens (property)", () => {
  it("sum to the metered charge: lines written + what accrues = the charge; each piece once, in one month, each month rounded once", () => {
    fc.assert(
      fc.property(history, ({ steps, begin, price }) => {
        const cloud = play(steps, begin, price, true);
        const keys = cloud.lines.map((l) => l.key);
        expect(new Set(keys).size).toBe(keys.length);
        for (const l of cloud.lines) {
          expect(l.seconds).toBeGreaterThan(0n);
          expect(l.end).toBeLessThanOrEqual(monthOf(new Date(l.start)).end.getTime());
          expect(l.amountMinor).toBeGreaterThanOrEqual(0n);
        }
        // The lines written along the way are exactly the lines of the final history.
        expect(cloud.lines).toEqual(usageLines(ID, cloud.runs, price));
        const now = Math.max(cloud.now, cloud.runs.at(-1)?.end ?? cloud.runs.at(-1)?.start ?? cloud.now);
        const open = accruing(ID, cloud.runs, price, now);
        expect(sum(cloud.lines) + open.amountMinor).toBe(meteredCharge(ID, cloud.runs, price, now));
        // Stopped now, the cloud's lines are the charge it showed.
        const all = usageLines(ID, stop(cloud.runs, now), price);
        expect(sum(all)).toBe(meteredCharge(ID, cloud.runs, price, now));
        // Pieces add up to exactly the running time, and round at most half a unit each.
        const exact = chargeFor(cloud.runs, price, now);
        expect(all.reduce((n, l) => n + l.seconds, 0n)).toBe(exact.seconds);
        expect(cloud.lines.reduce((n, l) => n + l.seconds, 0n) + open.seconds).toBe(exact.seconds);
        // Each month's lines add up to its exact total rounded once, however its time was split.
        const months = new Map<number, { amount: bigint; quantitySeconds: bigint }>();
        for (const l of all) {
          const month = monthOf(new Date(l.start)).start.getTime();
          const m = months.get(month) ?? { amount: 0n, quantitySeconds: 0n };
          months.set(month, {
            amount: m.amount + l.amountMinor,
            quantitySeconds: m.quantitySeconds + BigInt(l.quantity) * l.seconds,
          });
        }
        for (const m of months.values()) expect(m.amount).toBe(lineAmountMinor(1, m.quantitySeconds, price));
        const drift = sum(all) - exact.chargeMinor;
        expect(2n * (drift < 0n ? -drift : drift)).toBeLessThanOrEqual(BigInt(months.size) + 1n);
      }),
      { numRuns: 500 },
    );
  });

  it("are the same when the history drops its months wholly billed, which add up to what it dropped", () => {
    let dropping = 0;
    // Long enough to run over months, with a month's wait now and then.
    const months = fc.record({
      steps: fc.array(
        fc.oneof(
          step,
          fc.constant<Step>({ kind: "wait", ms: 31 * DAY }),
          fc.constant<Step>({ kind: "start" }),
        ),
        { minLength: 20, maxLength: 80 },
      ),
      begin: fc.integer({ min: Date.UTC(2026, 0, 1), max: Date.UTC(2030, 0, 1) }),
      price: fc.bigInt({ min: 0n, max: 100_000n }),
    });
    fc.assert(
      fc.property(months, ({ steps, begin, price }) => {
        const whole = play(steps, begin, price, true);
        const settled = play(steps, begin, price, true, true);
        expect(settled.lines).toEqual(whole.lines);
        const dropped = settled.settled;
        if (dropped) dropping += 1;
        expect(whole.runs.slice(whole.runs.length - settled.runs.length)).toEqual(settled.runs);
        expect(dropped?.intervals ?? 0).toBe(whole.runs.length - settled.runs.length);
        // What it dropped is wholly before `through`, and what it keeps wholly after.
        for (const run of whole.runs.slice(0, dropped?.intervals ?? 0))
          expect(run.end).toBeLessThanOrEqual(dropped?.through as number);
        if (dropped && settled.runs[0]) expect(settled.runs[0].start).toBeGreaterThanOrEqual(dropped.through);
        const kept = usageLines(ID, settled.runs, price);
        expect(BigInt(dropped?.billedMinor ?? "0") + sum(kept)).toBe(sum(usageLines(ID, whole.runs, price)));
        const now = Math.max(whole.now, whole.runs.at(-1)?.end ?? whole.runs.at(-1)?.start ?? whole.now);
        expect(BigInt(dropped?.seconds ?? "0") + chargeFor(settled.runs, 0n, now).seconds).toBe(
          chargeFor(whole.runs, 0n, now).seconds,
        );
        expect(accruing(ID, settled.runs, price, now)).toEqual(accruing(ID, whole.runs, price, now));
        // Stopped now, it writes the same lines either way.
        const at = runInstant(whole.runs, new Date(now));
        expect(linesClosedBy(ID, settled.runs, stop(settled.runs, at), price)).toEqual(
          linesClosedBy(ID, whole.runs, stop(whole.runs, at), price),
        );
      }),
      { numRuns: 500 },
    );
    // Histories over several months drop some: the property is not about empty ones only.
    expect(dropping).toBeGreaterThan(100);
  });

  it("keeps a run across a month start with its month, whose earlier piece it priced", () => {
    const feb = Date.UTC(2027, 1, 1);
    const december = Date.UTC(2026, 11, 10);
    const runs = [
      closed(december, december + DAY),
      closed(feb - 5 * DAY, feb - 4 * DAY),
      closed(feb - HOUR, feb + HOUR),
      closed(feb + DAY, feb + 2 * DAY),
    ];
    // February's start is run across: January stays, with the run before it in January.
    const { intervals, settled } = settleRuns(ID, runs, 100n, undefined);
    expect(intervals).toEqual(runs.slice(1));
    expect(settled).toEqual({
      through: Date.UTC(2027, 0, 1),
      intervals: 1,
      seconds: "86400",
      billedMinor: "2400",
    });
    // Nothing more to drop: the same history, the same object.
    expect(settleRuns(ID, intervals, 100n, settled).intervals).toBe(intervals);
  });

  it("are the same whether or not the cron closed the months: it decides when a line is written, never its amount", () => {
    fc.assert(
      fc.property(history, ({ steps, begin, price }) => {
        const finished: Step[] = [...steps, { kind: "wait", ms: DAY }, { kind: "stop" }];
        const withCron = play(finished, begin, price, true);
        const without = play(finished, begin, price, false);
        expect(withCron.lines).toEqual(without.lines);
        expect(sum(withCron.lines)).toBe(meteredCharge(ID, withCron.runs, price, withCron.now));
      }),
      { numRuns: 300 },
    );
  });
});
