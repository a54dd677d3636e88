import { eachWithin } from "../domain/concurrency";
import { logError } from "../domain/log";
import { backoff } from "../domain/retry";
import { type Commit, PUSH_CHECK_AFTER_MS, UnpushedChanges } from "./unpushed-changes";

/**
 * When a subscription whose alarm failed is woken again: 5 s after a first failure, twice as long
 * after each failure in a row, at most 5 minutes (`backoff`).
 */
const ALARM_RETRY_MS = 5_000;
const ALARM_RETRY_MAX_MS = 300_000;

/** How many subscriptions' alarms run at once. */
const ALARMS_AT_ONCE = 8;

/**
 * How many wakes one run of the alarm runs at most, the earliest first, and how many push checks
 * it makes: what is past them is left to the next run, which the alarm, set again for the earliest
 * left, makes at once. So a run stays within what one invocation may do (its subrequests, its D1
 * queries, its CPU time) however many came due together (terms of a shard ending at the same
 * instant), and one that fails all the same is retried with what it had done kept.
 */
export const WAKES_PER_ALARM = 50;
export const CHECKS_PER_ALARM = 100;

const earliestOf = (a: number | null, b: number | null): number | null =>
  a === null ? b : b === null ? a : Math.min(a, b);

/** What the shard's alarm runs, for its subscriptions. */
export interface AlarmTargets {
  /** Subscription `id`'s own alarm: its wake came. */
  alarm(id: string): Promise<void>;
  /** Has what `commits` left unpushed pushed: answers the subscriptions all of whose commit landed. */
  pushLeft(commits: readonly Commit[]): Promise<Set<string>>;
}

/**
 * A shard's one Durable Object alarm, shared by what its subscriptions wait for: each one's wake
 * (one per subscription, each set replacing the one before, as an object's own alarm would) and
 * the push checks of their commits (`UnpushedChanges`).
 */
export class ShardAlarm {
  readonly unpushed: UnpushedChanges;
  /** Subscriptions whose alarm is running, and whether their wake was set again meanwhile. */
  private readonly alarming = new Map<string, boolean>();
  /** When the alarm is set for, as this instance set it (null: not set; undefined: not known yet). */
  private alarmAt: number | null | undefined;

  constructor(private readonly storage: DurableObjectStorage) {
    const sql = storage.sql;
    // `failures`: how many times in a row the subscription's alarm failed.
    sql.exec(
      "CREATE TABLE IF NOT EXISTS wakes (subscription TEXT PRIMARY KEY, at INTEGER NOT NULL, failures INTEGER NOT NULL DEFAULT 0)",
    );
    // Shards made before the column get it on their first start.
    if (
      !sql
        .exec<{ name: string }>("PRAGMA table_info(wakes)")
        .toArray()
        .some((c) => c.name === "failures")
    )
      sql.exec("ALTER TABLE wakes ADD COLUMN failures INTEGER NOT NULL DEFAULT 0");
    this.unpushed = new UnpushedChanges(sql);
  }

  /** Sets `id`'s wake to `at`, replacing the one it had; `failures`: in a row, before this one. */
  async wake(id: string, at: number, failures = 0): Promise<void> {
    this.storage.sql.exec(
      "INSERT OR REPLACE INTO wakes (subscription, at, failures) VALUES (?, ?, ?)",
      id,
      at,
      failures,
    );
    if (this.alarming.has(id)) this.alarming.set(id, true);
    await this.schedule();
  }

  /** Wakes `id` again after a failure, as long after as the failures of its wake in a row say. */
  async retry(id: string): Promise<void> {
    const failures =
      this.storage.sql
        .exec<{ failures: number }>("SELECT failures FROM wakes WHERE subscription = ?", id)
        .toArray()[0]?.failures ?? 0;
    await this.wake(id, Date.now() + backoff(ALARM_RETRY_MS, ALARM_RETRY_MAX_MS, failures), failures + 1);
  }

  /**
   * Has the alarm check, once due, that what was committed at `at` was pushed. Called in the
   * commit's turn, so the alarm is stored with the commit (a turn's writes are committed together).
   */
  checkPushOf(at: number): void {
    const by = at + PUSH_CHECK_AFTER_MS;
    if (this.alarmAt != null && this.alarmAt <= by) return;
    // Not known yet: set no later than the first wake.
    const next = Math.min(by, (this.alarmAt === undefined ? this.firstWake() : this.alarmAt) ?? by);
    this.alarmAt = next;
    this.storage
      .setAlarm(next)
      .catch((error: unknown) => logError("subscription.alarm_not_set", error, { at: next }));
  }

  /**
   * The alarm went off: runs the subscriptions' alarms whose wake is due, then has every change
   * whose push check is due pushed, at most `WAKES_PER_ALARM` and `CHECKS_PER_ALARM` of them, the
   * rest in the next run, at once. Run before anything is due (as a test does), it runs the
   * earliest wakes; a check runs only once due. Each wake is then over unless it was set again
   * meanwhile, and one that failed is tried again later on its own; a change whose push failed is
   * checked again a whole delay later.
   */
  async run(targets: AlarmTargets): Promise<void> {
    // The alarm that went off is set no more.
    this.alarmAt = null;
    const now = Date.now();
    const checks = this.unpushed.due(now, CHECKS_PER_ALARM);
    const firstWake = this.firstWake();
    const early = checks.length === 0 && firstWake !== null && firstWake > now;
    await this.runWakes(early ? firstWake : now, targets);
    if (checks.length > 0) {
      let landed = new Set<string>();
      try {
        landed = await targets.pushLeft(checks);
      } catch (error) {
        logError("subscription.push_check_failed", error, { commits: checks.length });
      }
      const at = Date.now();
      for (const { subscription, version } of checks) {
        if (landed.has(subscription)) this.unpushed.pushed(subscription, version);
        else this.unpushed.postpone(subscription, version, at);
      }
    }
    await this.schedule();
  }

  private async runWakes(until: number, targets: AlarmTargets): Promise<void> {
    const sql = this.storage.sql;
    const due = sql
      .exec<{ subscription: string; at: number; failures: number }>(
        "SELECT subscription, at, failures FROM wakes WHERE at <= ? ORDER BY at, subscription LIMIT ?",
        until,
        WAKES_PER_ALARM,
      )
      .toArray();
    await eachWithin(due, ALARMS_AT_ONCE, async ({ subscription, at, failures }) => {
      // A wake set while this one runs (even for the same instant) is a new one, and stays.
      this.alarming.set(subscription, false);
      try {
        await targets.alarm(subscription);
        if (!this.alarming.get(subscription))
          sql.exec("DELETE FROM wakes WHERE subscription = ? AND at = ?", subscription, at);
        this.alarming.delete(subscription);
      } catch (error) {
        this.alarming.delete(subscription);
        const retryInMs = backoff(ALARM_RETRY_MS, ALARM_RETRY_MAX_MS, failures);
        logError("subscription.alarm_failed", error, { subscription, failures: failures + 1, retryInMs });
        // A wake set again while it ran is a new one: it keeps its own instant and count.
        sql.exec(
          "UPDATE wakes SET at = ?, failures = failures + 1 WHERE subscription = ? AND at = ?",
          Date.now() + retryInMs,
          subscription,
          at,
        );
      }
    });
  }

  private firstWake(): number | null {
    return this.storage.sql.exec<{ at: number | null }>("SELECT MIN(at) AS at FROM wakes").one().at;
  }

  /**
   * The alarm, set for the earliest wake or push check. Decided before any await, so a commit's
   * `checkPushOf` meanwhile is never undone by an older decision.
   */
  private async schedule(): Promise<void> {
    const next = earliestOf(this.firstWake(), this.unpushed.nextCheck());
    if (next === this.alarmAt) return;
    this.alarmAt = next;
    if (next === null) await this.storage.deleteAlarm();
    else await this.storage.setAlarm(next);
  }
}
