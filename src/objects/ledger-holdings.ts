import { type Decision, RESOLVED } from "../domain/commissions";
import * as quota from "../domain/quota";

export interface HoldingView {
  source: string;
  resource: string;
  limit: number;
  usage: number;
  pending: number;
}

export interface LedgerProvision {
  source: string;
  resource: string;
  quantity: number;
}

export type HoldFailure = quota.IssueFailure | { name: "NoHoldingError" };

export type HoldResult =
  | { ok: true }
  | {
      ok: false;
      /** Index into the provisions passed of the one to blame. */
      index: number;
      failure: HoldFailure;
    };

interface HoldingRow extends Record<string, SqlStorageValue> {
  source: string;
  resource: string;
  limit_value: number;
  usage_min: number;
  usage_max: number;
}

interface PendingRow extends Record<string, SqlStorageValue> {
  source: string;
  resource: string;
  quantity: number;
}

/**
 * One holder's side of a ledger, in its storage: the holdings (limit, usage_min, usage_max), the
 * provisions of the unresolved commissions that touch them, and the serials it resolved. Callers
 * run each change inside one storage transaction.
 */
export class LedgerHoldings {
  /** Holdings read or written since this instance started; every write goes through `write`. */
  private readonly cached = new Map<string, HoldingRow>();

  constructor(private readonly sql: SqlStorage) {
    sql.exec(`
      CREATE TABLE IF NOT EXISTS holdings (
        source TEXT NOT NULL, resource TEXT NOT NULL,
        limit_value INTEGER NOT NULL, usage_min INTEGER NOT NULL, usage_max INTEGER NOT NULL,
        PRIMARY KEY (source, resource));
      CREATE TABLE IF NOT EXISTS pending (
        serial INTEGER NOT NULL, source TEXT NOT NULL, resource TEXT NOT NULL, quantity INTEGER NOT NULL,
        PRIMARY KEY (serial, source, resource));
      CREATE TABLE IF NOT EXISTS resolved (serial INTEGER PRIMARY KEY, outcome TEXT NOT NULL);
    `);
  }

  setLimit(source: string, resource: string, limit: number): HoldingView {
    this.sql.exec(
      `INSERT INTO holdings (source, resource, limit_value, usage_min, usage_max) VALUES (?, ?, ?, 0, 0)
       ON CONFLICT (source, resource) DO UPDATE SET limit_value = excluded.limit_value`,
      source,
      resource,
      limit,
    );
    this.cached.delete(holdingKey(source, resource));
    const row = this.holding(source, resource);
    if (!row) throw new Error("holding vanished after upsert");
    return view(row);
  }

  /** Every holding of `source` gets limit 0 (a member leaving a project); usage stays to be released. */
  zeroLimits(source: string): void {
    this.sql.exec("UPDATE holdings SET limit_value = 0 WHERE source = ?", source);
    this.cached.clear();
  }

  all(): HoldingView[] {
    return this.sql.exec<HoldingRow>("SELECT * FROM holdings ORDER BY source, resource").toArray().map(view);
  }

  /**
   * Holds the provisions of commission `serial`, all or none. A serial already known is a no-op,
   * so a retried step never counts twice; `fresh`: the serial was just handed out, so no earlier
   * step can have held it.
   */
  hold(serial: number, provisions: LedgerProvision[], force: boolean, fresh = false): HoldResult {
    if (!fresh && this.knows(serial)) return { ok: true };
    const checked = this.check(provisions, force, false);
    if (!checked.ok) return checked;
    for (const [p, h] of checked.updates) {
      this.write(p.source, p.resource, h);
      this.sql.exec(
        "INSERT INTO pending (serial, source, resource, quantity) VALUES (?, ?, ?, ?)",
        serial,
        p.source,
        p.resource,
        p.quantity,
      );
    }
    return { ok: true };
  }

  /** Issues and accepts at once: the holdings move straight to their accepted usage. */
  take(provisions: LedgerProvision[], force: boolean): HoldResult {
    const checked = this.check(provisions, force, true);
    if (!checked.ok) return checked;
    for (const [p, h] of checked.updates) this.write(p.source, p.resource, h);
    return { ok: true };
  }

  /** Resolves what is held for `serial`; a serial never held is remembered as resolved. */
  settle(serial: number, decision: Decision): void {
    const apply = decision === "accept" ? quota.accept : quota.reject;
    const rows = this.sql.exec<PendingRow>("SELECT * FROM pending WHERE serial = ?", serial).toArray();
    for (const p of rows) {
      const row = this.holding(p.source, p.resource);
      if (row) this.write(p.source, p.resource, apply(toHolding(row), p.quantity));
    }
    this.sql.exec("DELETE FROM pending WHERE serial = ?", serial);
    this.sql.exec(
      "INSERT OR IGNORE INTO resolved (serial, outcome) VALUES (?, ?)",
      serial,
      RESOLVED[decision],
    );
  }

  /** A transaction rolled back: what memory holds is read again from storage. */
  forget(): void {
    this.cached.clear();
  }

  /** What each holding becomes with its provision issued (and, with `accept`, accepted), or what fails. */
  private check(
    provisions: LedgerProvision[],
    force: boolean,
    accept: boolean,
  ): Extract<HoldResult, { ok: false }> | { ok: true; updates: Array<[LedgerProvision, quota.Holding]> } {
    const updates: Array<[LedgerProvision, quota.Holding]> = [];
    for (const [index, p] of provisions.entries()) {
      const row = this.holding(p.source, p.resource);
      if (!row) return { ok: false, index, failure: { name: "NoHoldingError" } };
      const result = quota.issue(toHolding(row), p.quantity, force);
      if (!result.ok) return { ok: false, index, failure: result.failure };
      updates.push([p, accept ? quota.accept(result.holding, p.quantity) : result.holding]);
    }
    return { ok: true, updates };
  }

  private knows(serial: number): boolean {
    const pending = this.sql.exec("SELECT 1 FROM pending WHERE serial = ? LIMIT 1", serial).toArray();
    if (pending.length > 0) return true;
    return this.sql.exec("SELECT 1 FROM resolved WHERE serial = ?", serial).toArray().length > 0;
  }

  private holding(source: string, resource: string): HoldingRow | undefined {
    const key = holdingKey(source, resource);
    const cached = this.cached.get(key);
    if (cached) return cached;
    const row = this.sql
      .exec<HoldingRow>("SELECT * FROM holdings WHERE source = ? AND resource = ?", source, resource)
      .toArray()[0];
    if (row) this.cached.set(key, row);
    return row;
  }

  private write(source: string, resource: string, h: quota.Holding): void {
    this.sql.exec(
      "UPDATE holdings SET usage_min = ?, usage_max = ? WHERE source = ? AND resource = ?",
      h.usageMin,
      h.usageMax,
      source,
      resource,
    );
    const key = holdingKey(source, resource);
    const cached = this.cached.get(key);
    if (cached) this.cached.set(key, { ...cached, usage_min: h.usageMin, usage_max: h.usageMax });
  }
}

const holdingKey = (source: string, resource: string) => JSON.stringify([source, resource]);

function toHolding(row: HoldingRow): quota.Holding {
  return { limit: row.limit_value, usageMin: row.usage_min, usageMax: row.usage_max };
}

function view(row: HoldingRow): HoldingView {
  const h = toHolding(row);
  return {
    source: row.source,
    resource: row.resource,
    limit: h.limit,
    usage: quota.reportedUsage(h),
    pending: quota.pendingQuantity(h),
  };
}
