/** How long a forsaken move is remembered: far longer than any call can be on its way. */
const REMEMBERED_MS = 24 * 60 * 60 * 1000;

/**
 * The quota moves a ledger answered "not made" to, each by its reference and the attempt that
 * sent it. A subscription that lost its move's answer asks the ledger by the reference, and drops
 * its change when told the move was not made; but that attempt's call may still be on its way (its
 * connection failed, or its instance died, before the ledger got it), and made after the answer
 * it would hold quota for a change that never happened. So the ledger refuses it when it comes. A
 * later attempt at the same change (a retry, a release by another term of the hold) sends
 * another attempt, which is made as usual.
 */
export class LedgerForsakenMoves {
  constructor(private readonly sql: SqlStorage) {
    sql.exec(`CREATE TABLE IF NOT EXISTS forsaken_moves (
      reference TEXT NOT NULL, attempt TEXT NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (reference, attempt))`);
  }

  /** Remembers that attempt `attempt` of move `reference` was answered "not made" (forgets old ones). */
  forsake(reference: string, attempt: string, now: number): void {
    this.sql.exec("DELETE FROM forsaken_moves WHERE at < ?", now - REMEMBERED_MS);
    this.sql.exec("INSERT OR REPLACE INTO forsaken_moves VALUES (?, ?, ?)", reference, attempt, now);
  }

  /** Whether attempt `attempt` of move `reference` was answered "not made". */
  has(reference: string, attempt: string): boolean {
    return (
      this.sql
        .exec("SELECT 1 FROM forsaken_moves WHERE reference = ? AND attempt = ?", reference, attempt)
        .toArray().length > 0
    );
  }
}
