import { index, integer, primaryKey, sqliteTable, text } from "drizzle-orm/sqlite-core";

/** The webhook deliveries' tables: one row per event and endpoint, and each attempt at it. */

export const DELIVERY_STATUSES = ["pending", "delivered", "dead"] as const;
export type DeliveryStatus = (typeof DELIVERY_STATUSES)[number];

/**
 * One event for one syndication endpoint, retried until it answers 2xx or its retention horizon
 * passes (src/app/webhooks.ts).
 */
export const webhookDeliveries = sqliteTable(
  "webhook_deliveries",
  {
    /** The `webhook-id`: the same on every attempt, so receivers can drop duplicates. */
    id: text("id").primaryKey(),
    vendorId: text("vendor_id").notNull(),
    product: text("product").notNull(),
    subscriptionId: text("subscription_id").notNull(),
    type: text("type", { enum: ["CREATED", "MODIFIED", "DELETED"] }).notNull(),
    sequence: integer("sequence").notNull(),
    payload: text("payload").notNull(),
    status: text("status", { enum: DELIVERY_STATUSES }).notNull(),
    attempts: integer("attempts").notNull().default(0),
    /** Attempts made before the last redelivery: the retry schedule starts again from there. */
    scheduleBase: integer("schedule_base").notNull().default(0),
    /** When the retry schedule last started over (a redelivery); null: when the event was made. */
    scheduleStartedAt: text("schedule_started_at"),
    nextAttemptAt: text("next_attempt_at"),
    lockedUntil: text("locked_until"),
    lastStatus: integer("last_status"),
    lastError: text("last_error"),
    createdAt: text("created_at").notNull(),
    deliveredAt: text("delivered_at"),
  },
  (t) => [
    index("webhook_deliveries_vendor").on(t.vendorId, t.id),
    index("webhook_deliveries_vendor_status").on(t.vendorId, t.status, t.id),
    index("webhook_deliveries_status").on(t.status, t.id),
    // A subscription's events go out in order: each waits for the undelivered ones before it.
    index("webhook_deliveries_subscription").on(t.subscriptionId, t.sequence),
    // Pending deliveries by when they are due: the cron finds those whose message was lost.
    index("webhook_deliveries_due").on(t.status, t.nextAttemptAt),
    // Deliveries that are over, by age: the cron forgets those past their retention horizon.
    index("webhook_deliveries_over").on(t.status, t.createdAt),
  ],
);

export const webhookAttempts = sqliteTable(
  "webhook_attempts",
  {
    deliveryId: text("delivery_id").notNull(),
    attempt: integer("attempt").notNull(),
    at: text("at").notNull(),
    status: integer("status"),
    error: text("error"),
    durationMs: integer("duration_ms").notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.deliveryId, t.attempt] }),
    // By age: the cron forgets attempts past the retention horizon.
    index("webhook_attempts_at").on(t.at),
  ],
);
