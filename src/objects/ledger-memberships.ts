import type { LedgerHoldings } from "./ledger-holdings";

/**
 * A member's memberships of the projects it holds quota of, as its ledger knows them: each
 * membership is a generation (db/projects.ts, new at each join that makes the row), open or
 * closed for good. The D1 row says who is a member; this says whether a late call about a
 * membership (a limit change or a join past its check, a removal that comes after a join) still
 * applies, which only the ledger, taking one call at a time, can decide. Callers run each change
 * inside one storage transaction.
 */
export class LedgerMemberships {
  constructor(
    private readonly sql: SqlStorage,
    private readonly holders: LedgerHoldings,
  ) {
    sql.exec(`
      CREATE TABLE IF NOT EXISTS closed_sources (source TEXT PRIMARY KEY);
      CREATE TABLE IF NOT EXISTS member_generations (
        source TEXT NOT NULL, generation TEXT NOT NULL, closed INTEGER NOT NULL,
        PRIMARY KEY (source, generation));
    `);
  }

  /**
   * Membership `generation` of the project `source` stands for ended: every holding of `source`
   * gets limit 0 (usage stays to be released), and the generation stays closed for good, so a late
   * limit change or join about it sets and opens nothing. A removal that comes late, once the
   * customer joined again (a later generation open), leaves the new membership's limits as they
   * are: it is not that removal's to end.
   */
  close(source: string, generation: string): void {
    this.sql.exec(
      `INSERT INTO member_generations (source, generation, closed) VALUES (?, ?, 1)
       ON CONFLICT (source, generation) DO UPDATE SET closed = 1`,
      source,
      generation,
    );
    const later = this.sql
      .exec(
        "SELECT 1 FROM member_generations WHERE source = ? AND generation <> ? AND closed = 0",
        source,
        generation,
      )
      .toArray();
    if (later.length > 0) return;
    this.holders.zeroLimits(source);
    // Until a generation opens, limits of none that is not open are set (a member that left keeps 0).
    this.sql.exec("INSERT OR IGNORE INTO closed_sources (source) VALUES (?)", source);
  }

  /**
   * The customer joined the project `source` stands for as membership `generation`: its limits
   * may be set again. A generation already closed stays closed (a join of a member that was being
   * removed, landing after the removal's close): false.
   */
  open(source: string, generation: string): boolean {
    if (this.generationClosed(source, generation) === true) return false;
    this.sql.exec(
      "INSERT OR IGNORE INTO member_generations (source, generation, closed) VALUES (?, ?, 0)",
      source,
      generation,
    );
    this.sql.exec("DELETE FROM closed_sources WHERE source = ?", source);
    return true;
  }

  /** Whether a member's limit of membership `generation` is refused: it ended, or it is not open and the source was closed. */
  refuses(source: string, generation: string): boolean {
    const closed = this.generationClosed(source, generation);
    if (closed !== null) return closed;
    return this.sql.exec("SELECT 1 FROM closed_sources WHERE source = ?", source).toArray().length > 0;
  }

  private generationClosed(source: string, generation: string): boolean | null {
    const row = this.sql
      .exec<{ closed: number }>(
        "SELECT closed FROM member_generations WHERE source = ? AND generation = ?",
        source,
        generation,
      )
      .toArray()[0];
    return row ? row.closed === 1 : null;
  }
}
