/**
 * Metering of start/stop subscriptions, free of I/O: customers pay only for the time they run.
 *
 * A subscription's run history is an ordered list of intervals during which it was running, each
 * carrying the quantity in force. Every transition returns a new list and never mutates its input,
 * and no function reads the clock: the caller passes the instant (epoch milliseconds).
 *
 * A well-formed history has safe-integer instants, non-negative safe-integer quantities, intervals
 * that never overlap and never go back in time, and at most one open interval, the last one.
 * Adjacent intervals may touch (a quantity change closes one and opens the next at the same instant).
 */

export interface RunInterval {
  /** Epoch milliseconds, inclusive. */
  start: number;
  /** Epoch milliseconds, exclusive; null while still running. */
  end: number | null;
  quantity: number;
}

export interface Charge {
  /** Running time in whole seconds, whatever the quantity. */
  seconds: bigint;
  /** Σ quantity × seconds: the exact amount consumed, before pricing. */
  quantitySeconds: bigint;
  /** Minor units of the billing currency. */
  chargeMinor: bigint;
}

const MS_PER_SECOND = 1000n;
const SECONDS_PER_HOUR = 3600n;

function assertInstant(ms: number, what: string): void {
  if (!Number.isSafeInteger(ms)) throw new RangeError(`${what} is not an epoch-millisecond integer: ${ms}`);
}

function assertQuantity(quantity: number): void {
  if (!Number.isSafeInteger(quantity) || quantity < 0) {
    throw new RangeError(`quantity must be a non-negative integer: ${quantity}`);
  }
}

// A corrupt history would be billed wrongly without a trace (an overlap charges twice), so every
// function that interprets one refuses it instead.
function assertHistory(intervals: readonly RunInterval[]): void {
  let previousEnd = Number.NEGATIVE_INFINITY;
  intervals.forEach((interval, index) => {
    assertInstant(interval.start, `interval ${index} start`);
    assertQuantity(interval.quantity);
    if (interval.start < previousEnd) throw new RangeError(`interval ${index} overlaps the one before`);
    if (interval.end === null) {
      if (index !== intervals.length - 1) throw new RangeError(`interval ${index} is open but not the last`);
      return;
    }
    assertInstant(interval.end, `interval ${index} end`);
    if (interval.end < interval.start) throw new RangeError(`interval ${index} ends before it starts`);
    previousEnd = interval.end;
  });
}

/**
 * Whole seconds elapsed between two instants, counted as the number of absolute second boundaries
 * (multiples of 1000 ms since the epoch) crossed. Truncating each interval's own duration instead
 * would lose up to a second per interval, so splitting an interval (at a quantity change, or a stop
 * and an immediate start) would lower the charge; boundary counting is additive:
 * seconds(a, c) = seconds(a, b) + seconds(b, c) for every a ≤ b ≤ c.
 */
export function secondsBetween(fromMs: number, toMs: number): bigint {
  // Exact integer division: Math.floor(ms / 1000) also happens to be right across the safe range,
  // but near 2^53 only by about a hundredth of an ulp, a margin nobody should have to re-prove.
  return floorSeconds(toMs) - floorSeconds(fromMs);
}

function floorSeconds(ms: number): bigint {
  const big = BigInt(ms);
  const quotient = big / MS_PER_SECOND;
  // BigInt division truncates towards zero; instants before 1970 still need the floor.
  return big < 0n && quotient * MS_PER_SECOND !== big ? quotient - 1n : quotient;
}

/**
 * What the history costs up to `now`. Open intervals run until `now`, closed ones are cut at `now`,
 * and any part after `now` counts nothing, so the charge never anticipates time not yet consumed.
 *
 * The price is per unit and hour; the total Σ quantity × seconds × price / 3600 is rounded half-up
 * once, never per interval, so that how the history happens to be split never changes the charge.
 * That is how a prepaid term is priced; a CaaS cloud's running time is billed as charge lines,
 * whose amounts add up to each month's total rounded once (`src/domain/usage.ts`).
 */
export function chargeFor(
  intervals: readonly RunInterval[],
  unitPricePerHourMinor: bigint,
  now: number,
): Charge {
  assertHistory(intervals);
  assertInstant(now, "now");
  // Half-up is only unambiguous for non-negative amounts; a discount is not a negative run price.
  if (unitPricePerHourMinor < 0n) throw new RangeError("unit price must not be negative");

  let seconds = 0n;
  let quantitySeconds = 0n;
  for (const interval of intervals) {
    const end = Math.min(interval.end ?? now, now);
    const elapsed = secondsBetween(interval.start, end);
    if (elapsed <= 0n) continue;
    seconds += elapsed;
    quantitySeconds += BigInt(interval.quantity) * elapsed;
  }
  const chargeMinor = (quantitySeconds * unitPricePerHourMinor + SECONDS_PER_HOUR / 2n) / SECONDS_PER_HOUR;
  return { seconds, quantitySeconds, chargeMinor };
}

/**
 * Run intervals one history holds at most. A start, and a resize while running, each add one;
 * months wholly billed leave the history (`settleRuns`), so this bounds one month: a start every
 * 9 minutes, all month. Past it a record would outgrow one stored row (2 MB, in a Durable Object's
 * SQLite and in D1): a stop could no longer be saved, and the cloud would run on, billed. A stop,
 * a cancel and the month close are never refused.
 */
export const MAX_RUN_INTERVALS = 5_000;

/** Whether starting (or resizing a running) cloud would add an interval past `MAX_RUN_INTERVALS`. */
export function historyFull(intervals: readonly RunInterval[]): boolean {
  return intervals.length >= MAX_RUN_INTERVALS;
}

export function isRunning(intervals: readonly RunInterval[]): boolean {
  return intervals.at(-1)?.end === null;
}

// The latest instant the history knows of: the end of the last interval, or its start while open.
function lastInstant(intervals: readonly RunInterval[]): number {
  const last = intervals.at(-1);
  if (last === undefined) return Number.NEGATIVE_INFINITY;
  return last.end ?? last.start;
}

// Transitions recorded out of order would rewrite time already billed, so they are refused, even
// when the transition itself would be a no-op.
function assertTransition(intervals: readonly RunInterval[], at: number): void {
  assertHistory(intervals);
  assertInstant(at, "at");
  const last = lastInstant(intervals);
  if (at < last) throw new RangeError(`time went backwards: ${at} is before ${last}`);
}

function closeLast(intervals: readonly RunInterval[], at: number): RunInterval[] {
  return intervals.map((interval, index) =>
    index === intervals.length - 1 ? { ...interval, end: at } : { ...interval },
  );
}

/** Opens an interval at `at`; starting a running subscription changes nothing, whatever the quantity. */
export function start(intervals: readonly RunInterval[], at: number, quantity: number): RunInterval[] {
  assertTransition(intervals, at);
  assertQuantity(quantity);
  const copy = intervals.map((interval) => ({ ...interval }));
  if (isRunning(intervals)) return copy;
  copy.push({ start: at, end: null, quantity });
  return copy;
}

/** Closes the open interval at `at`; stopping a stopped subscription changes nothing. */
export function stop(intervals: readonly RunInterval[], at: number): RunInterval[] {
  assertTransition(intervals, at);
  if (!isRunning(intervals)) return intervals.map((interval) => ({ ...interval }));
  return closeLast(intervals, at);
}

/**
 * A quantity change while running: the open interval ends at `at` and one with `newQuantity`
 * starts there, so each quantity is billed for exactly its own seconds. A stopped subscription has
 * nothing to split; the caller keeps the new quantity for its next `start`.
 */
export function splitAt(intervals: readonly RunInterval[], at: number, newQuantity: number): RunInterval[] {
  assertTransition(intervals, at);
  assertQuantity(newQuantity);
  if (!isRunning(intervals)) return intervals.map((interval) => ({ ...interval }));
  const closed = closeLast(intervals, at);
  closed.push({ start: at, end: null, quantity: newQuantity });
  return closed;
}

/**
 * The instant a run transition is recorded at. Work accepted earlier (a queued operation) may
 * apply after a later change; the run history must not go back in time, so it applies then.
 */
export function runInstant(intervals: readonly RunInterval[], now: Date): number {
  const last = intervals.at(-1);
  return Math.max(now.getTime(), last ? (last.end ?? last.start) : 0);
}
