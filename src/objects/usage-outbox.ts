import { insertUsageCharges, type UsageCharge } from "../db/charges";
import { monthOf } from "../domain/charges";
import type { SubscriptionRecord } from "../domain/subscriptions";
import { linesClosedBy } from "../domain/usage";

/**
 * A CaaS cloud's usage lines on their way to the charges ledger: the lines a change writes are
 * recorded in the storage transaction that commits the change (the record that closes the
 * interval), then pushed to D1 and only then deleted here. A crash never loses a line; pushing one
 * again writes nothing, since its key is its primary key in D1. Only clouds write lines.
 */
export class UsageOutbox {
  constructor(private readonly sql: SqlStorage) {}

  /** Records the lines the change from `previous` to `next` writes; call inside its transaction. */
  record(previous: SubscriptionRecord | null, next: SubscriptionRecord): void {
    if (next.kind !== "caas") return;
    const lines = linesClosedBy(next.id, previous?.runs ?? [], next.runs, BigInt(next.unitPriceMinor));
    for (const line of lines) {
      const charge: UsageCharge = {
        key: line.key,
        partnerId: next.partnerId,
        customerId: next.customerId,
        subscriptionId: next.id,
        product: next.product,
        quantity: line.quantity,
        unitPriceMinor: next.unitPriceMinor,
        periodStart: new Date(line.start).toISOString(),
        periodEnd: new Date(line.end).toISOString(),
        seconds: Number(line.seconds),
        amountMinor: line.amountMinor.toString(),
        currency: next.currency,
        month: monthOf(new Date(line.start)).name,
      };
      this.sql.exec(
        "INSERT OR IGNORE INTO usage_lines (key, subscription, start, body) VALUES (?, ?, ?, ?)",
        line.key,
        next.id,
        line.start,
        JSON.stringify(charge),
      );
    }
  }

  /** Writes the lines not yet in D1 there; throws if D1 does not take them, keeping them for a retry. */
  async push(env: Env, r: SubscriptionRecord): Promise<void> {
    if (r.kind !== "caas") return;
    const rows = this.sql
      .exec<{ key: string; body: string }>(
        "SELECT key, body FROM usage_lines WHERE subscription = ? ORDER BY start",
        r.id,
      )
      .toArray();
    if (rows.length === 0) return;
    await insertUsageCharges(
      env,
      rows.map((row) => JSON.parse(row.body) as UsageCharge),
    );
    for (const row of rows) this.sql.exec("DELETE FROM usage_lines WHERE key = ?", row.key);
  }
}

/** The lines waiting for D1, of every cloud in the shard. */
export function createUsageLines(sql: SqlStorage): void {
  sql.exec(`CREATE TABLE IF NOT EXISTS usage_lines (
      key TEXT PRIMARY KEY, subscription TEXT NOT NULL, start INTEGER NOT NULL, body TEXT NOT NULL)`);
  sql.exec("CREATE INDEX IF NOT EXISTS usage_lines_subscription ON usage_lines (subscription, start)");
}
