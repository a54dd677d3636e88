import { sql } from "drizzle-orm";
import { index, integer, primaryKey, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";
import { DELIVERY_MODES, PRODUCT_KINDS } from "../domain/catalog";
import type { TermChargeKind } from "../domain/charges";
import type { GraceSecret } from "../domain/webhooks";

export const createdAt = () =>
  text("created_at").notNull().default(sql`(strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))`);

/** How many requests a partner's credentials may make: each tier is one rate-limiting binding. */
export const RATE_LIMIT_TIERS = ["standard", "raised", "unlimited"] as const;
export type RateLimitTier = (typeof RATE_LIMIT_TIERS)[number];

export const partners = sqliteTable("partners", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  rateLimit: text("rate_limit", { enum: RATE_LIMIT_TIERS }).notNull().default("standard"),
  createdAt: createdAt(),
});

export const services = sqliteTable(
  "services",
  {
    id: text("id").primaryKey(),
    partnerId: text("partner_id")
      .notNull()
      .references(() => partners.id),
    name: text("name").notNull(),
    createdAt: createdAt(),
  },
  // A resource belongs to the service its registration names (`resources.service`): one name, one
  // service, whichever partner it is of.
  (t) => [uniqueIndex("services_name").on(t.name)],
);

export const customers = sqliteTable(
  "customers",
  {
    id: text("id").primaryKey(),
    partnerId: text("partner_id")
      .notNull()
      .references(() => partners.id),
    name: text("name").notNull(),
    email: text("email"),
    userName: text("user_name"),
    phone: text("phone"),
    address: text("address", { mode: "json" }).$type<CustomerAddress>(),
    /** Grows with every update: a write conditioned on If-Match applies only to the version compared. */
    version: integer("version").notNull().default(1),
    createdAt: createdAt(),
  },
  (t) => [index("customers_partner_id").on(t.partnerId, t.id)],
);

export interface CustomerAddress {
  address?: string;
  city?: string;
  zipCode?: string;
  country?: string;
}

/**
 * `customer`: an end user's quota-API token (`X-Auth-Token`); `account`: a customer-scoped `/v1`
 * key, which buys. Two roles, so a user's token never gains the account's buying power.
 */
export const ROLES = ["operator", "partner", "service", "customer", "account", "vendor"] as const;
export type Role = (typeof ROLES)[number];

/**
 * Every secret the API accepts. `subjectId` is what the credential stands for: the partner of a
 * partner key, the service of a service token, the customer of a user token.
 */
export const credentials = sqliteTable(
  "credentials",
  {
    id: text("id").primaryKey(),
    role: text("role", { enum: ROLES }).notNull(),
    partnerId: text("partner_id").references(() => partners.id),
    subjectId: text("subject_id"),
    secretHash: text("secret_hash").notNull(),
    label: text("label"),
    createdAt: createdAt(),
    revokedAt: text("revoked_at"),
  },
  (t) => [index("credentials_subject").on(t.role, t.subjectId)],
);

export const resources = sqliteTable("resources", {
  name: text("name").primaryKey(),
  unit: text("unit"),
  description: text("description").notNull().default(""),
  service: text("service").notNull(),
  allowInProjects: integer("allow_in_projects", { mode: "boolean" }).notNull().default(true),
  createdAt: createdAt(),
});

/**
 * Serials are handed out by the holders' ledgers, a block of them at a time: a ledger takes a new
 * block here when its block runs out, and the block of a serial tells which ledger (`home`) keeps
 * that commission. Blocks only grow, so each ledger's serials strictly increase.
 */
export const serialBlocks = sqliteTable("serial_blocks", {
  block: integer("block").primaryKey({ autoIncrement: true }),
  home: text("home").notNull(),
  createdAt: createdAt(),
});

/**
 * The index of the commissions services issued, projected by each commission's home ledger (the
 * source of truth) so a service's pending serials can be listed across ledgers. `version` orders
 * the projections: a late write never overwrites a newer state.
 */
export const commissionIndex = sqliteTable(
  "commission_index",
  {
    serial: integer("serial").primaryKey(),
    serviceId: text("service_id").notNull(),
    state: text("state").notNull(),
    version: integer("version").notNull(),
  },
  (t) => [index("commission_index_service_state").on(t.serviceId, t.state, t.serial)],
);

/**
 * What partners can order. `unitPriceMinor` is per unit and hour, except for depletable products,
 * which are priced per unit consumed. Every product consumes its `quotaResource`.
 */
export const products = sqliteTable("products", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  kind: text("kind", { enum: PRODUCT_KINDS }).notNull(),
  unit: text("unit").notNull(),
  unitPriceMinor: integer("unit_price_minor").notNull(),
  currency: text("currency").notNull(),
  quotaResource: text("quota_resource")
    .notNull()
    .references(() => resources.name),
  aliases: text("aliases", { mode: "json" }).notNull().$type<string[]>().default(sql`'[]'`),
  delivery: text("delivery", { enum: DELIVERY_MODES }).notNull().default("builtin"),
  vendorId: text("vendor_id").references(() => vendors.id),
  /** Where a syndicated product's events are pushed. */
  endpoint: text("endpoint"),
  /** Standard Webhooks signing secret (`whsec_…`); kept because every delivery is signed with it. */
  signingSecret: text("signing_secret"),
  /** The secret before the last rotation: deliveries carry both signatures until it expires. */
  previousSecret: text("previous_secret"),
  previousSecretExpiresAt: text("previous_secret_expires_at"),
  /**
   * The secrets rotations replaced before the previous one, each with the end of its own 24 h:
   * a second rotation within a day keeps signing with them too, not only with the one it replaced.
   */
  olderSecrets: text("older_secrets", { mode: "json" }).notNull().$type<GraceSecret[]>().default(sql`'[]'`),
  /** Grows with every update of what `GET /v1/products/{id}` shows (If-Match, as for customers). */
  version: integer("version").notNull().default(1),
  createdAt: createdAt(),
});

/** Software vendors whose syndicated products stratus sells; they see subscriptions of their products. */
export const vendors = sqliteTable("vendors", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  createdAt: createdAt(),
});

export const ORDER_STATES = ["pending", "completed", "failed"] as const;

/** One purchase by one customer: a create (its lines for that customer) or an extension. */
export const orders = sqliteTable(
  "orders",
  {
    id: text("id").primaryKey(),
    partnerId: text("partner_id")
      .notNull()
      .references(() => partners.id),
    customerId: text("customer_id")
      .notNull()
      .references(() => customers.id),
    lines: text("lines", { mode: "json" }).notNull().$type<OrderLine[]>(),
    totalMinor: integer("total_minor").notNull(),
    currency: text("currency").notNull(),
    state: text("state", { enum: ORDER_STATES }).notNull(),
    createdAt: createdAt(),
  },
  (t) => [
    index("orders_partner").on(t.partnerId, t.id),
    // A customer-scoped key's list, and `?customer=`: one customer's orders in id order.
    index("orders_customer").on(t.partnerId, t.customerId, t.id),
  ],
);

export interface OrderLine {
  subscription: string;
  product: string;
  amount: number;
  priceMinor: number;
  /**
   * The key of the charge line this order line writes when the order completes, and what that line
   * records besides the order's own columns. Absent on lines written before the charges ledger.
   */
  charge?: string;
  chargeKind?: TermChargeKind;
  unitPriceMinor?: number;
  start?: string;
  end?: string | null;
}

/**
 * The read model of subscriptions, for listing and filtering. Each row is a projection pushed by
 * the subscription's Durable Object; `version` only grows, so a late push never overwrites a
 * newer one.
 */
export const subscriptions = sqliteTable(
  "subscriptions",
  {
    id: text("id").primaryKey(),
    partnerId: text("partner_id").notNull(),
    customerId: text("customer_id").notNull(),
    product: text("product").notNull(),
    kind: text("kind", { enum: PRODUCT_KINDS }).notNull(),
    amount: integer("amount").notNull(),
    startTime: text("start_time").notNull(),
    endTime: text("end_time"),
    autoRenew: integer("auto_renew", { mode: "boolean" }).notNull(),
    /** Set once the subscription can no longer be used: cancelled, depleted or expired by cron. */
    endedAt: text("ended_at"),
    rootId: text("root_id").notNull(),
    previousId: text("previous_id"),
    nextId: text("next_id"),
    orderId: text("order_id").notNull(),
    body: text("body", { mode: "json" }).notNull().$type<Record<string, unknown>>(),
    version: integer("version").notNull(),
    /** A running CaaS cloud's open interval start (epoch ms): the cron closes months by it. */
    runningSince: integer("running_since"),
    /**
     * Until when (epoch ms) a cron run's renewal message for this term is taken to be on its way,
     * so later runs do not enqueue it again (`claimDue`). Every projection of the term clears it.
     */
    renewalQueuedUntil: integer("renewal_queued_until"),
    /**
     * Whether the term after it (`next_id`) was created and is live or ran its course (expired):
     * then nothing is due for this one, which the due index leaves out. Never pushed with the
     * term: each batch of projections sets it from the rows it wrote and the terms before them
     * (`refollow`), since it changes when the successor does.
     */
    followed: integer("followed", { mode: "boolean" }).notNull().default(false),
  },
  (t) => [
    // The partner's list walks this index in id order; it holds every column the list filters on
    // (product, status, first of a chain), so a row that does not match is skipped without being
    // read from the table, and a page costs about the same at any table size.
    index("subscriptions_list").on(
      t.partnerId,
      t.id,
      t.product,
      t.kind,
      t.startTime,
      t.endTime,
      t.endedAt,
      t.previousId,
    ),
    // The same walk over one customer's subscriptions (a customer-scoped key, `?customer=`).
    index("subscriptions_customer").on(
      t.partnerId,
      t.customerId,
      t.id,
      t.product,
      t.kind,
      t.startTime,
      t.endTime,
      t.endedAt,
      t.previousId,
    ),
    index("subscriptions_partner_product").on(t.partnerId, t.product, t.id),
    // A chain's terms in its order (start, then id): its last term, or a window of it, is read
    // without sorting the whole chain.
    index("subscriptions_root").on(t.rootId, t.startTime, t.id),
    // Only terms that can be due: the cron's scan walks these, never a term that ended nor one
    // renewed or extended (every renewal ever would otherwise be in it, its end in the past).
    index("subscriptions_due").on(t.endTime, t.id).where(sql`ended_at is null and followed = 0`),
    index("subscriptions_depletion_queue").on(t.customerId, t.product, t.endedAt, t.id),
    index("subscriptions_running").on(t.runningSince, t.id).where(sql`running_since is not null`),
  ],
);

/**
 * Idempotency-Key records (IETF httpapi-idempotency-key-header): per owner and key, the
 * request's fingerprint and, once finished, the response to replay.
 */
export const idempotencyKeys = sqliteTable(
  "idempotency_keys",
  {
    /**
     * Whose key it is (`keyOwner`): the partner, account, service or vendor the credential stands
     * for, not the credential itself, so a key outlives the rotation of the credential that sent it.
     */
    owner: text("owner").notNull(),
    key: text("key").notNull(),
    fingerprint: text("fingerprint").notNull(),
    status: integer("status"),
    headers: text("headers", { mode: "json" }).$type<Array<[string, string]>>(),
    body: text("body"),
    /**
     * The work the request committed to (its operation payload, and its opRef when it answered
     * 202), recorded before any of it was done: a retry after a crash resumes exactly this.
     */
    intent: text("intent", { mode: "json" }).$type<Record<string, unknown>>(),
    lockedUntil: text("locked_until").notNull(),
    expiresAt: text("expires_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.owner, t.key] }), index("idempotency_expiry").on(t.expiresAt)],
);

export const OPERATION_STATUSES = ["queued", "running", "succeeded", "failed"] as const;
export type OperationStatus = (typeof OPERATION_STATUSES)[number];

/**
 * Long-running operations (CaaS "OpRef"): the accepted work, its progress, and its final answer,
 * which the status endpoint serves for at least 30 days.
 */
export const operations = sqliteTable(
  "operations",
  {
    opRef: text("op_ref").primaryKey(),
    partnerId: text("partner_id").notNull(),
    /** The one customer the work is for, if it is for one: that customer's key may read it. */
    customerId: text("customer_id"),
    kind: text("kind").notNull(),
    payload: text("payload", { mode: "json" }).notNull().$type<Record<string, unknown>>(),
    status: text("status", { enum: OPERATION_STATUSES }).notNull(),
    attempts: integer("attempts").notNull().default(0),
    /** Set while a purchase waits on its vendor: nothing is stalled, the vendor's report moves it on. */
    waiting: integer("waiting", { mode: "boolean" }).notNull().default(false),
    /**
     * `resultBody`: what a finished operation did, as JSON: its result or, failed, its error
     * (`outcomeOf`, src/app/operations.ts), which src/http renders when it is read. Rows finished
     * before results were stored as data hold the rendered answer instead, with its status and
     * location in `resultStatus` and `resultLocation`, which are null on every newer row.
     */
    resultStatus: integer("result_status"),
    resultBody: text("result_body"),
    resultLocation: text("result_location"),
    createdAt: text("created_at").notNull(),
    updatedAt: text("updated_at").notNull(),
    expiresAt: text("expires_at").notNull(),
  },
  (t) => [
    index("operations_partner").on(t.partnerId, t.opRef),
    index("operations_partner_status").on(t.partnerId, t.status, t.opRef),
    index("operations_customer").on(t.partnerId, t.customerId, t.opRef, t.status),
    index("operations_expiry").on(t.expiresAt),
    index("operations_unfinished").on(t.status, t.updatedAt),
    // A customer's operations not finished (`renewalStopQueued`): its history is not walked.
    index("operations_customer_unfinished")
      .on(t.partnerId, t.customerId)
      .where(sql`status in ('queued', 'running')`),
  ],
);

/**
 * The depletables a consumption report spreads over, in order, as its first run read them: every
 * run of the report walks this queue, so two runs at once never drain two different depletables
 * for it (one finding an older purchase taken effect that the other did not). Kept as long as the
 * depletables remember the report (`REPORT_MEMORY_MS`), from when its first run began at the
 * earliest: `expiresAt` less the memory (`queueOfReport`).
 */
export const consumptionQueues = sqliteTable(
  "consumption_queues",
  {
    report: text("report").primaryKey(),
    subscriptions: text("subscriptions", { mode: "json" }).notNull().$type<string[]>(),
    expiresAt: text("expires_at").notNull(),
  },
  (t) => [index("consumption_queues_expiry").on(t.expiresAt)],
);
