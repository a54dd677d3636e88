import { DurableObject } from "cloudflare:workers";
import * as quota from "../domain/quota";
import type { Env } from "../env";

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

export type LedgerIssueResult =
  | { ok: true }
  | {
      ok: false;
      /** Index into the provisions passed to `issue` of the one to blame. */
      index: number;
      failure: quota.IssueFailure | { name: "NoHoldingError" };
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
 * One holder's holdings and the provisions of its unresolved commissions. Every mutation is one
 * synchronous storage transaction, so concurrent commissions against a holder serialize here and
 * can never over-commit a limit.
 */
export class QuotaLedger extends DurableObject<Env> {
  private readonly sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(`
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
    const row = this.holding(source, resource);
    if (!row) throw new Error("holding vanished after upsert");
    return view(row);
  }

  holdings(): HoldingView[] {
    return this.sql.exec<HoldingRow>("SELECT * FROM holdings ORDER BY source, resource").toArray().map(view);
  }

  /**
   * Registers the provisions of commission `serial` against this holder, all or none. Issuing a
   * serial this ledger already knows is a no-op, so a retried issue never counts twice.
   */
  issue(serial: number, provisions: LedgerProvision[], force: boolean, accept = false): LedgerIssueResult {
    return this.ctx.storage.transactionSync((): LedgerIssueResult => {
      if (this.knows(serial)) return { ok: true };
      const updates: Array<[LedgerProvision, quota.Holding]> = [];
      for (const [index, p] of provisions.entries()) {
        const row = this.holding(p.source, p.resource);
        if (!row) return { ok: false, index, failure: { name: "NoHoldingError" } };
        const result = quota.issue(toHolding(row), p.quantity, force);
        if (!result.ok) return { ok: false, index, failure: result.failure };
        updates.push([p, result.holding]);
      }
      for (const [p, h] of updates) {
        this.write(p.source, p.resource, h);
        this.sql.exec(
          "INSERT INTO pending (serial, source, resource, quantity) VALUES (?, ?, ?, ?)",
          serial,
          p.source,
          p.resource,
          p.quantity,
        );
      }
      // A commission on this holder alone, accepted at once: both steps in one transaction.
      if (accept) this.applyResolution(serial, "accepted", quota.accept);
      return { ok: true };
    });
  }

  /** What became of a serial here: pending, accepted, rejected, or null if this ledger never saw it. */
  outcome(serial: number): "pending" | "accepted" | "rejected" | null {
    const resolved = this.sql
      .exec<{ outcome: "accepted" | "rejected" }>("SELECT outcome FROM resolved WHERE serial = ?", serial)
      .toArray()[0];
    if (resolved) return resolved.outcome;
    return this.sql.exec("SELECT 1 FROM pending WHERE serial = ? LIMIT 1", serial).toArray().length > 0
      ? "pending"
      : null;
  }

  /** Finalizes a pending commission. Idempotent, and cannot fail: it only narrows usage. */
  accept(serial: number): void {
    this.resolve(serial, "accepted", quota.accept);
  }

  /** Undoes a pending commission. Idempotent, and cannot fail: it only narrows usage. */
  reject(serial: number): void {
    this.resolve(serial, "rejected", quota.reject);
  }

  private resolve(
    serial: number,
    outcome: "accepted" | "rejected",
    apply: (h: quota.Holding, quantity: number) => quota.Holding,
  ): void {
    this.ctx.storage.transactionSync(() => this.applyResolution(serial, outcome, apply));
  }

  private applyResolution(
    serial: number,
    outcome: "accepted" | "rejected",
    apply: (h: quota.Holding, quantity: number) => quota.Holding,
  ): void {
    const rows = this.sql.exec<PendingRow>("SELECT * FROM pending WHERE serial = ?", serial).toArray();
    for (const p of rows) {
      const row = this.holding(p.source, p.resource);
      if (row) this.write(p.source, p.resource, apply(toHolding(row), p.quantity));
    }
    this.sql.exec("DELETE FROM pending WHERE serial = ?", serial);
    this.sql.exec("INSERT OR IGNORE INTO resolved (serial, outcome) VALUES (?, ?)", serial, outcome);
  }

  private knows(serial: number): boolean {
    const pending = this.sql.exec("SELECT 1 FROM pending WHERE serial = ? LIMIT 1", serial).toArray();
    if (pending.length > 0) return true;
    return this.sql.exec("SELECT 1 FROM resolved WHERE serial = ?", serial).toArray().length > 0;
  }

  private holding(source: string, resource: string): HoldingRow | undefined {
    return this.sql
      .exec<HoldingRow>("SELECT * FROM holdings WHERE source = ? AND resource = ?", source, resource)
      .toArray()[0];
  }

  private write(source: string, resource: string, h: quota.Holding): void {
    this.sql.exec(
      "UPDATE holdings SET usage_min = ?, usage_max = ? WHERE source = ? AND resource = ?",
      h.usageMin,
      h.usageMax,
      source,
      resource,
    );
  }
}

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

/** The ledger of one holder. */
export function ledgerOf(env: Env, holder: string): DurableObjectStub<QuotaLedger> {
  return env.QUOTA_LEDGER.get(env.QUOTA_LEDGER.idFromName(holder));
}
