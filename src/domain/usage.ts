/**
 * Metered usage as charge lines, free of I/O: how a CaaS cloud's running time becomes the `usage`
 * lines of the charges ledger, and what is accruing on top of them.
 *
 * Every interval of a run history is cut at each UTC month boundary into pieces; each closed
 * piece is one line, rounded on its own: half up, of quantity × seconds × unit price per hour
 * ÷ 3600, in integer minor units. A piece's seconds count second boundaries as `chargeFor` does,
 * so pieces add up to exactly the seconds of their interval. Where a history is split (a quantity
 * change, a stop and a start, the cron closing a month) changes which lines there are, and so
 * the rounding; cutting a running interval at a month boundary does not, because the pieces are
 * cut there anyway: the cron closing a month only decides when a line is written, never its amount.
 */
import { monthOf, usageChargeKey } from "./charges";
import { isRunning, type RunInterval, secondsBetween, splitAt } from "./metering";

export interface UsageLine {
  /** The line's key in the charges ledger. */
  key: string;
  /** Epoch milliseconds: the piece is [start, end). */
  start: number;
  end: number;
  quantity: number;
  seconds: bigint;
  amountMinor: bigint;
}

const SECONDS_PER_HOUR = 3600n;

/** One line's amount: quantity × seconds × price per hour ÷ 3600, rounded half up. */
export function lineAmountMinor(quantity: number, seconds: bigint, unitPricePerHourMinor: bigint): bigint {
  if (unitPricePerHourMinor < 0n) throw new RangeError("unit price must not be negative");
  return (BigInt(quantity) * seconds * unitPricePerHourMinor + SECONDS_PER_HOUR / 2n) / SECONDS_PER_HOUR;
}

/**
 * [from, to) cut at every UTC month boundary inside it, as lines. A piece with no running second
 * bills nothing and makes no line, which also keeps keys unique: an empty interval can start
 * where the next one starts.
 */
function piecesOf(
  subscriptionId: string,
  from: number,
  to: number,
  quantity: number,
  price: bigint,
): UsageLine[] {
  const lines: UsageLine[] = [];
  for (let start = from; start < to; ) {
    const end = Math.min(monthOf(new Date(start)).end.getTime(), to);
    const seconds = secondsBetween(start, end);
    if (seconds > 0n) {
      const amountMinor = lineAmountMinor(quantity, seconds, price);
      lines.push({ key: usageChargeKey(subscriptionId, start), start, end, quantity, seconds, amountMinor });
    }
    start = end;
  }
  return lines;
}

/** The lines of the closed intervals of `intervals`: what the ledger holds once every push landed. */
export function usageLines(
  subscriptionId: string,
  intervals: readonly RunInterval[],
  unitPricePerHourMinor: bigint,
): UsageLine[] {
  return intervals.flatMap((i) =>
    i.end === null ? [] : piecesOf(subscriptionId, i.start, i.end, i.quantity, unitPricePerHourMinor),
  );
}

/**
 * The lines a change from history `previous` to `next` writes: those of the intervals it closed.
 * Histories only grow at their end (a transition closes the open interval, opens one, or both),
 * so the intervals `previous` had closed are a prefix of those `next` has.
 */
export function linesClosedBy(
  subscriptionId: string,
  previous: readonly RunInterval[],
  next: readonly RunInterval[],
  unitPricePerHourMinor: bigint,
): UsageLine[] {
  const closedBefore = previous.filter((i) => i.end !== null).length;
  return usageLines(subscriptionId, next.slice(closedBefore), unitPricePerHourMinor);
}

/** What the open interval has run up to `now` and not yet billed, rounded as its lines will be. */
export function accruing(
  subscriptionId: string,
  intervals: readonly RunInterval[],
  unitPricePerHourMinor: bigint,
  now: number,
): { seconds: bigint; amountMinor: bigint } {
  const open = intervals.at(-1);
  if (open === undefined || open.end !== null) return { seconds: 0n, amountMinor: 0n };
  const pieces = piecesOf(subscriptionId, open.start, now, open.quantity, unitPricePerHourMinor);
  return {
    seconds: pieces.reduce((n, p) => n + p.seconds, 0n),
    amountMinor: pieces.reduce((n, p) => n + p.amountMinor, 0n),
  };
}

/** The metered charge at `now`: Σ the lines of the closed intervals, plus what is accruing. */
export function meteredCharge(
  subscriptionId: string,
  intervals: readonly RunInterval[],
  unitPricePerHourMinor: bigint,
  now: number,
): bigint {
  const billed = usageLines(subscriptionId, intervals, unitPricePerHourMinor);
  return (
    billed.reduce((n, l) => n + l.amountMinor, 0n) +
    accruing(subscriptionId, intervals, unitPricePerHourMinor, now).amountMinor
  );
}

/**
 * Closes the months that ended by `boundary` for a history still running since before it: the
 * open interval ends there and runs on, same quantity, from there, which closes (and so bills)
 * the time before it. Anything else is returned as it is (the same array), so a second close of
 * the same month changes nothing.
 */
export function closeMonthAt(intervals: RunInterval[], boundary: number): RunInterval[] {
  const open = intervals.at(-1);
  if (!isRunning(intervals) || open === undefined || open.start >= boundary) return intervals;
  return splitAt(intervals, boundary, open.quantity);
}
