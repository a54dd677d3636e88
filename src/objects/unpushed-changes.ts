/**
 * How long after a commit the shard's alarm checks that the commit was pushed (read model, usage
 * lines, events). A live instance pushes within the request that committed (and retries a failed
 * push on its own wake); this is the bound for one that died between its commit and its push.
 */
export const PUSH_CHECK_AFTER_MS = 60_000;

/** A commit whose push is to be checked: its subscription and version. */
export interface Commit {
  subscription: string;
  version: number;
}

/**
 * The changes of a shard's subscriptions that may not be pushed yet: each commit notes its
 * subscription and version in the commit's own transaction, and the shard's alarm, once the check
 * is due, has each pushed (a push of what already landed writes nothing) and forgets it. So an
 * instance that dies after a commit, before or during its push, leaves nothing behind for good:
 * no read model showing an older version, no usage line missing from the charges, no event that
 * never reaches its vendor. Forgetting happens in the alarm, not after each push, so a change
 * costs no storage write beyond its commit's.
 */
export class UnpushedChanges {
  constructor(private readonly sql: SqlStorage) {
    sql.exec(`CREATE TABLE IF NOT EXISTS unpushed (
      subscription TEXT PRIMARY KEY, version INTEGER NOT NULL, at INTEGER NOT NULL)`);
    // The alarm is set from the earliest, and a check takes those due: neither scans the table.
    sql.exec("CREATE INDEX IF NOT EXISTS unpushed_at ON unpushed (at)");
  }

  /**
   * Subscription `id` committed `version` at `at`; call inside the commit's transaction. A change
   * not checked yet keeps its instant: the check of the first is due first, and covers both.
   */
  note(id: string, version: number, at: number): void {
    this.sql.exec(
      `INSERT INTO unpushed (subscription, version, at) VALUES (?, ?, ?)
        ON CONFLICT (subscription) DO UPDATE SET version = excluded.version`,
      id,
      version,
      at,
    );
  }

  /** The changes whose check is due at `now`, at most `limit` of them, the earliest first. */
  due(now: number, limit: number): Commit[] {
    return this.sql
      .exec<{ subscription: string; version: number }>(
        "SELECT subscription, version FROM unpushed WHERE at <= ? ORDER BY at, subscription LIMIT ?",
        now - PUSH_CHECK_AFTER_MS,
        limit,
      )
      .toArray();
  }

  /** `id`'s `version` is pushed: forgotten, unless a later commit noted a later one. */
  pushed(id: string, version: number): void {
    this.sql.exec("DELETE FROM unpushed WHERE subscription = ? AND version <= ?", id, version);
  }

  /** `id`'s `version` could not be pushed now: checked again a whole delay later. */
  postpone(id: string, version: number, now: number): void {
    this.sql.exec("UPDATE unpushed SET at = ? WHERE subscription = ? AND version = ?", now, id, version);
  }

  /** When the next check is due, or null when nothing is left to check. */
  nextCheck(): number | null {
    const first = this.sql.exec<{ at: number | null }>("SELECT MIN(at) AS at FROM unpushed").one().at;
    return first === null ? null : first + PUSH_CHECK_AFTER_MS;
  }
}
