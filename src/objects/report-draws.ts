import { REPORT_MEMORY_MS } from "../domain/consumption";
import type { SubscriptionRecord } from "../domain/subscriptions";

/**
 * What each consumption report took from each depletable of a shard (0: it passed over one whose
 * purchase had not taken effect), by age rather than by count: a busy customer's next reports
 * never push out the memory of one whose retry is still to come.
 */
export class ReportDraws {
  constructor(private readonly sql: SqlStorage) {
    sql.exec(`CREATE TABLE IF NOT EXISTS report_draws (
      subscription TEXT NOT NULL, report TEXT NOT NULL, used INTEGER NOT NULL, at INTEGER NOT NULL,
      PRIMARY KEY (subscription, report));
      CREATE INDEX IF NOT EXISTS report_draws_at ON report_draws (at);`);
  }

  /**
   * What `report` took from `r` (0: passed over), or null if it never reached it. The record
   * remembers its last draws too (`drawOf`): a depletion its quota step finished wrote no row.
   */
  took(r: SubscriptionRecord, report: string): number | null {
    const row = this.sql
      .exec<{ used: number }>(
        "SELECT used FROM report_draws WHERE subscription = ? AND report = ?",
        r.id,
        report,
      )
      .toArray()[0];
    return row?.used ?? r.consumed?.find((c) => c.report === report)?.used ?? null;
  }

  /** Remembers what `report` took from `subscription`; forgets what is older than the memory. */
  remember(subscription: string, report: string, used: number): void {
    const now = Date.now();
    this.sql.exec("DELETE FROM report_draws WHERE at < ?", now - REPORT_MEMORY_MS);
    this.sql.exec(
      "INSERT INTO report_draws (subscription, report, used, at) VALUES (?, ?, ?, ?)",
      subscription,
      report,
      used,
      now,
    );
  }
}
