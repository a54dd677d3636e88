import { backoff } from "../domain/retry";

/** The wait before the alarm indexes again after D1 failed once, and the longest, after many in a row. */
export const INDEX_RETRY_MS = 5_000;
export const INDEX_RETRY_MAX_MS = 300_000;

/**
 * When a ledger's alarm runs next. Each alarm run in a row whose projections into D1 failed (D1
 * down) doubles the wait before the index is tried again, from 5 s to at most 5 min, and a run with
 * none failed brings it back to 5 s: an hour of outage is some 20 failing runs a ledger, each
 * logging its rows, not 720. A run in which some rows were indexed and one failed counts as
 * failed: every run tries every unindexed row, so one row D1 keeps refusing holds the others back
 * by the wait only, and a D1 that fails some writes and takes others (a partial outage) would,
 * were any success a reset, keep the alarm at 5 s for as long as it lasts. The count is kept in
 * storage, as a ledger evicted between runs minutes apart would otherwise start again at 5 s. Every
 * next run is still set here, by the ledger itself, never left to the platform's retries of a
 * failed alarm.
 */
export class LedgerWakes {
  /** A projection failed since the alarm's run began. */
  private failed = false;

  constructor(private readonly storage: DurableObjectStorage) {
    storage.sql.exec(`CREATE TABLE IF NOT EXISTS index_failures (
      id INTEGER PRIMARY KEY CHECK (id = 1), failures INTEGER NOT NULL);`);
  }

  /** Makes sure the alarm fires within `ms`, leaving a sooner one as it is. */
  async within(ms: number): Promise<void> {
    const at = Date.now() + ms;
    const current = await this.storage.getAlarm();
    if (current === null || current > at) await this.storage.setAlarm(at);
  }

  /** Makes sure the alarm fires in time to index again, as long after as D1's failures in a row say. */
  toIndex(): Promise<void> {
    return this.within(backoff(INDEX_RETRY_MS, INDEX_RETRY_MAX_MS, this.failures()));
  }

  /** A projection into D1 failed: the index is tried again, and the alarm run under way failed. */
  indexFailed(): Promise<void> {
    this.failed = true;
    return this.toIndex();
  }

  runStarts(): void {
    this.failed = false;
  }

  /** The alarm run is over: one more failed run in a row, or none. */
  runEnds(): void {
    const before = this.failures();
    const failures = this.failed ? before + 1 : 0;
    if (failures === before) return;
    this.storage.sql.exec(
      "INSERT INTO index_failures (id, failures) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET failures = excluded.failures",
      failures,
    );
  }

  private failures(): number {
    return (
      this.storage.sql
        .exec<{ failures: number }>("SELECT failures FROM index_failures WHERE id = 1")
        .toArray()[0]?.failures ?? 0
    );
  }
}
