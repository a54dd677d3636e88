/**
 * Metered usage as charge lines, free of I/O: how a CaaS cloud's running time becomes the `usage`
 * lines of the charges ledger, and what is accruing on top of them.
 *
 * Every interval of a run history is cut at each UTC month boundary into pieces; each closed
 * piece is one line. A piece's seconds count second boundaries as `chargeFor` does, so pieces add
 * up to exactly the seconds of their interval. A month's lines are rounded as one: each is the
 * month's running total (Σ quantity × seconds × unit price per hour ÷ 3600, exact) rounded half up
 * at the piece's end, less the same rounded at its start, in integer minor units. So a month's
 * lines add up to its exact total rounded once, however the history is split (quantity changes,
 * stops and starts, the cron closing the month): ten runs of a few seconds each cost what one run
 * of their total costs, never nothing. A line depends only on the history before it, so lines
 * already written never change as the history grows.
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

/** quantity × seconds × price per hour ÷ 3600, rounded half up: one run's amount, alone. */
export function lineAmountMinor(quantity: number, seconds: bigint, unitPricePerHourMinor: bigint): bigint {
  return roundedMinor(BigInt(quantity) * seconds, unitPricePerHourMinor);
}

/** `quantitySeconds` × price per hour ÷ 3600, rounded half up, in minor units. */
function roundedMinor(quantitySeconds: bigint, unitPricePerHourMinor: bigint): bigint {
  if (unitPricePerHourMinor < 0n) throw new RangeError("unit price must not be negative");
  return (quantitySeconds * unitPricePerHourMinor + SECONDS_PER_HOUR / 2n) / SECONDS_PER_HOUR;
}

/** The quantity-seconds each month (by its start, epoch ms) has run so far, as lines are made. */
type MonthTotals = Map<number, bigint>;

/**
 * [from, to) cut at every UTC month boundary inside it, as lines, each priced as its month's
 * running total in `totals` rounded after it less rounded before it; `totals` moves on by it. A
 * piece with no running second bills nothing and makes no line, which also keeps keys unique: an
 * empty interval can start where the next one starts.
 */
function piecesOf(
  subscriptionId: string,
  from: number,
  to: number,
  quantity: number,
  price: bigint,
  totals: MonthTotals,
): UsageLine[] {
  const lines: UsageLine[] = [];
  for (let start = from; start < to; ) {
    const month = monthOf(new Date(start));
    const end = Math.min(month.end.getTime(), to);
    const seconds = secondsBetween(start, end);
    if (seconds > 0n) {
      const before = totals.get(month.start.getTime()) ?? 0n;
      const after = before + BigInt(quantity) * seconds;
      totals.set(month.start.getTime(), after);
      const amountMinor = roundedMinor(after, price) - roundedMinor(before, price);
      lines.push({ key: usageChargeKey(subscriptionId, start), start, end, quantity, seconds, amountMinor });
    }
    start = end;
  }
  return lines;
}

/** The lines of the closed intervals of `intervals`, with the month totals they leave. */
function closedLines(subscriptionId: string, intervals: readonly RunInterval[], price: bigint) {
  const totals: MonthTotals = new Map();
  const lines = intervals.flatMap((i) =>
    i.end === null ? [] : piecesOf(subscriptionId, i.start, i.end, i.quantity, price, totals),
  );
  return { lines, totals };
}

/** The lines of the closed intervals of `intervals`: what the ledger holds once every push landed. */
export function usageLines(
  subscriptionId: string,
  intervals: readonly RunInterval[],
  unitPricePerHourMinor: bigint,
): UsageLine[] {
  return closedLines(subscriptionId, intervals, unitPricePerHourMinor).lines;
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
  // Priced after the whole history before them (their months' running totals), which is why the
  // lines already written are counted again here rather than taken from `previous`.
  const written = usageLines(subscriptionId, next.slice(0, closedBefore), unitPricePerHourMinor).length;
  return usageLines(subscriptionId, next, unitPricePerHourMinor).slice(written);
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
  const { totals } = closedLines(subscriptionId, intervals, unitPricePerHourMinor);
  const pieces = piecesOf(subscriptionId, open.start, now, open.quantity, unitPricePerHourMinor, totals);
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

/**
 * What a cloud's run history no longer keeps (`settleRuns`): the intervals of its months wholly
 * billed, whose lines are in the charges ledger. Big integers are decimal text, as JSON keeps them.
 */
export interface SettledRuns {
  /** Epoch milliseconds, a UTC month's start: every interval dropped ended by then. */
  through: number;
  intervals: number;
  /** Their running seconds. */
  seconds: string;
  /** Σ their lines, in minor units. */
  billedMinor: string;
}

/**
 * Where a history's months wholly billed end (`settleRuns`): `kept` is the index of the first
 * interval it keeps, `through` the month start every interval before it ended by (any number
 * when nothing is dropped).
 */
function billedWhole(intervals: readonly RunInterval[]): { kept: number; through: number } {
  const last = intervals.at(-1);
  if (last === undefined) return { kept: 0, through: Number.NEGATIVE_INFINITY };
  const monthStart = (ms: number) => monthOf(new Date(ms)).start.getTime();
  let through = monthStart(last.end ?? last.start);
  let kept = intervals.length;
  for (let i = intervals.length - 1; i >= 0; i--) {
    const run = intervals[i] as RunInterval;
    if (run.end !== null && run.end <= through) break;
    kept = i;
    // A run across the month start keeps its month: its earlier piece was priced with it.
    if (run.start < through) through = monthStart(run.start);
  }
  return { kept, through };
}

/** How many intervals a history keeps once its months wholly billed have left it (`settleRuns`). */
export function keptRuns(intervals: readonly RunInterval[]): number {
  return intervals.length - billedWhole(intervals).kept;
}

/**
 * `intervals` without its months wholly billed, and `settled` with them added. A history keeps
 * every interval from the latest UTC month start that no interval runs across and that is not
 * after its last instant: a line is priced by its own month's running total and every line still
 * to come is at or after that instant, so no line written or to write changes, and each cloud's
 * history holds about a month, however long it lives (`MAX_RUN_INTERVALS` bounds that month).
 */
export function settleRuns(
  subscriptionId: string,
  intervals: RunInterval[],
  unitPricePerHourMinor: bigint,
  settled: SettledRuns | undefined,
): { intervals: RunInterval[]; settled: SettledRuns | undefined } {
  const { kept, through } = billedWhole(intervals);
  if (kept === 0) return { intervals, settled };
  const dropped = intervals.slice(0, kept);
  const billed = usageLines(subscriptionId, intervals, unitPricePerHourMinor)
    .filter((line) => line.end <= through)
    .reduce((n, line) => n + line.amountMinor, 0n);
  const seconds = dropped.reduce((n, run) => n + secondsBetween(run.start, run.end as number), 0n);
  return {
    intervals: intervals.slice(kept),
    settled: {
      through,
      intervals: (settled?.intervals ?? 0) + dropped.length,
      seconds: (BigInt(settled?.seconds ?? "0") + seconds).toString(),
      billedMinor: (BigInt(settled?.billedMinor ?? "0") + billed).toString(),
    },
  };
}
