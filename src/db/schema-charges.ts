import { sql } from "drizzle-orm";
import { index, integer, sqliteTable, text } from "drizzle-orm/sqlite-core";
import { CHARGE_KINDS } from "../domain/charges";
import { createdAt } from "./schema";

/** The books: the charges ledger and the months the cron closed for usage. */

/**
 * The charges ledger: one immutable line per event that moves money, keyed by what caused it
 * (`src/domain/charges.ts`), so a retried request or a redelivered message writes nothing twice.
 * Lines are only ever inserted (ON CONFLICT DO NOTHING), never updated or deleted: a purchase undone
 * after its line was written gets a `reversal` line of the opposite amount. `created_at` is when D1
 * wrote the line (its clock, at the insert), which decides the statement month it falls in.
 */
export const charges = sqliteTable(
  "charges",
  {
    key: text("key").primaryKey(),
    partnerId: text("partner_id").notNull(),
    customerId: text("customer_id").notNull(),
    subscriptionId: text("subscription_id").notNull(),
    /** The order that bought the term; null for usage. */
    orderId: text("order_id"),
    kind: text("kind", { enum: CHARGE_KINDS }).notNull(),
    product: text("product").notNull(),
    quantity: integer("quantity").notNull(),
    /** Per unit and hour (per unit consumed for depletables); null only on an order older than the ledger. */
    unitPriceMinor: integer("unit_price_minor"),
    /** The term a prepaid line buys, or the period a usage line meters. */
    periodStart: text("period_start"),
    periodEnd: text("period_end"),
    /** Running seconds of a usage line. */
    seconds: integer("seconds"),
    /** Integer minor units of `currency`; negative for a reversal. */
    amountMinor: integer("amount_minor").notNull(),
    currency: text("currency").notNull(),
    createdAt: createdAt(),
    /** The statement (`YYYY-MM`) the line is on: see `lineMonth` in src/db/charges.ts. */
    month: text("month").notNull().default(""),
  },
  (t) => [
    index("charges_customer_month").on(t.customerId, t.month, t.createdAt, t.key),
    index("charges_customer_time").on(t.customerId, t.createdAt, t.key),
    index("charges_partner_time").on(t.partnerId, t.createdAt, t.key),
    index("charges_subscription").on(t.subscriptionId, t.createdAt, t.key),
    index("charges_time").on(t.createdAt, t.key),
  ],
);

/**
 * The months whose usage the cron has closed: every cloud running into the month was billed up to
 * its end. A statement is closed once its month is over and closed here (or a later month is).
 */
export const usageCloses = sqliteTable("usage_closes", {
  month: text("month").primaryKey(),
  closedAt: text("closed_at").notNull().default(sql`(strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))`),
});

/**
 * Month closes under way: when a cron run last sent the month's running clouds to be billed up to
 * its end (`claimMonthClose`). Later runs leave them to those messages for a while, rather than
 * send every cloud still waiting in the queue again.
 */
export const usageClosings = sqliteTable("usage_closings", {
  month: text("month").primaryKey(),
  sentAt: text("sent_at").notNull(),
});
