import { insertUsageCharges, type UsageCharge } from "../db/charges";
import { monthOf } from "../domain/charges";
import type { SubscriptionRecord } from "../domain/subscriptions";
import { linesClosedBy } from "../domain/usage";

/** How many usage lines one D1 batch writes at most (a statement each). */
export const USAGE_LINES_PER_BATCH = 50;

/**
 * How many usage lines one push writes at most: the rest wait for the subscription's next push,
 * which its wake makes soon after (`SubscriptionStore.push`).
 */
export const USAGE_LINES_PER_PUSH = 200;

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

  /**
   * Writes the lines not yet in D1 there, oldest first, `USAGE_LINES_PER_BATCH` to a D1 batch,
   * each batch forgotten here once it landed: at most `USAGE_LINES_PER_PUSH`, so a push stays
   * within what one invocation may ask of D1 however many lines waited (D1 down for a while). Answers
   * whether none is left; throws if D1 does not take a batch, keeping its lines for a retry.
   */
  async push(env: Env, r: SubscriptionRecord): Promise<boolean> {
    if (r.kind !== "caas") return true;
    for (let pushed = 0; pushed < USAGE_LINES_PER_PUSH; pushed += USAGE_LINES_PER_BATCH) {
      const rows = this.sql
        .exec<{ key: string; body: string }>(
          "SELECT key, body FROM usage_lines WHERE subscription = ? ORDER BY start, key LIMIT ?",
          r.id,
          USAGE_LINES_PER_BATCH,
        )
        .toArray();
      if (rows.length === 0) return true;
      await insertUsageCharges(
        env,
        rows.map((row) => JSON.parse(row.body) as UsageCharge),
      );
      for (const row of rows) this.sql.exec("DELETE FROM usage_lines WHERE key = ?", row.key);
    }
    return (
      this.sql.exec("SELECT 1 FROM usage_lines WHERE subscription = ? LIMIT 1", r.id).toArray().length === 0
    );
  }
}

/** The lines waiting for D1, of every cloud in the shard. */
export function createUsageLines(sql: SqlStorage): void {
  sql.exec(`CREATE TABLE IF NOT EXISTS usage_lines (
      key TEXT PRIMARY KEY, subscription TEXT NOT NULL, start INTEGER NOT NULL, body TEXT NOT NULL)`);
  sql.exec("CREATE INDEX IF NOT EXISTS usage_lines_subscription ON usage_lines (subscription, start)");
}
