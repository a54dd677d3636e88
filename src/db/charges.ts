import { and, asc, eq, gt, gte, lt, lte, or, type Placeholder, type SQL, sql } from "drizzle-orm";
import type { Month } from "../domain/charges";
import type { Scope } from "../domain/scope";
import { builtOnce, type Database, database, parameterChunks } from "./client";
import { charges, usageCloses, usageClosings } from "./schema-charges";

/**
 * The charges ledger (`charges` in schema.ts). Term lines are written by SQL that reads what caused
 * them (a completed order's lines; the lines a reversal undoes), so each write is one statement
 * that runs in the same D1 batch as the change that causes it, and needs nothing read beforehand;
 * usage lines come with their values from their subscription's object, which keeps them until they
 * land.
 * Those SELECTs list the table's columns in the order schema.ts defines them (drizzle's insert
 * names them so), and `ON CONFLICT (key) DO NOTHING` keeps every line written once.
 */

export type Charge = typeof charges.$inferSelect;
export type NewCharge = typeof charges.$inferInsert;

/** D1's clock, in the format of every stored instant: the time a line is written. */
const D1_NOW = sql.raw(`strftime('%Y-%m-%dT%H:%M:%fZ', 'now')`);

/** The month D1's clock is in: the statement a term line goes on. */
const D1_MONTH = sql.raw(`strftime('%Y-%m', 'now')`);

/**
 * The key of the line an order line `l` writes: the key it names (`termChargeKey`), or, on an
 * order older than the ledger, the same key made from its subscription.
 */
const LINE_KEY = sql.raw(
  "coalesce(json_extract(l.value, '$.charge'), 'purchase:' || json_extract(l.value, '$.subscription'))",
);

const list = (values: readonly string[]) =>
  sql.join(
    values.map((value) => sql`${value}`),
    sql`, `,
  );

/**
 * The lines of the orders `orderIds` that are completed, one per order line (each term bought is a
 * subscription): its amount is the order line's price. Run after the statement that completes
 * the orders, in the same batch. Idempotent: a line already written stays as it is. An order line
 * written before the ledger lacks the term's details: they are read from the subscription's projection.
 */
export function completedOrderCharges(db: Database, orderIds: readonly string[]) {
  return parameterChunks(orderIds, 0).map((chunk) => chargesOfCompleted(db, list(chunk)));
}

/** `completedOrderCharges` of the one order `{ order }` binds, built once. */
export const completedOrderChargesOfOne = builtOnce((db) => chargesOfCompleted(db, sql.placeholder("order")));

function chargesOfCompleted(db: Database, orderIds: SQL | Placeholder<string>) {
  return db
    .insert(charges)
    .select(sql`
      SELECT
        ${LINE_KEY}, o.partner_id, o.customer_id, json_extract(l.value, '$.subscription'), o.id,
        coalesce(json_extract(l.value, '$.chargeKind'), 'purchase'),
        json_extract(l.value, '$.product'), json_extract(l.value, '$.amount'),
        coalesce(json_extract(l.value, '$.unitPriceMinor'), json_extract(s.body, '$.unitPriceMinor')),
        coalesce(json_extract(l.value, '$.start'), s.start_time),
        CASE WHEN json_type(l.value, '$.end') IS NULL THEN s.end_time ELSE json_extract(l.value, '$.end') END,
        NULL, json_extract(l.value, '$.priceMinor'), o.currency, ${D1_NOW}, ${D1_MONTH}
      FROM orders o
        JOIN json_each(o.lines) l
        LEFT JOIN subscriptions s ON s.id = json_extract(l.value, '$.subscription')
      WHERE o.id IN (${orderIds}) AND o.state = 'completed'`)
    .onConflictDoNothing({ target: charges.key });
}

/**
 * Reversals of the term lines the orders `orderIds` wrote, for orders being undone: each line
 * written gets its `reversal:<subscription>` line of the opposite amount (keyed in the SQL, row by
 * row), so the subscription's lines sum to 0.
 * Lines never written get none. Idempotent.
 */
export function reversalCharges(db: Database, orderIds: readonly string[]) {
  return parameterChunks(orderIds, 0).map((chunk) =>
    db
      .insert(charges)
      .select(sql`
      SELECT
        'reversal:' || c.subscription_id, c.partner_id, c.customer_id, c.subscription_id, c.order_id,
        'reversal', c.product, c.quantity, c.unit_price_minor, c.period_start, c.period_end, c.seconds,
        -c.amount_minor, c.currency, ${D1_NOW}, ${D1_MONTH}
      FROM charges c
      WHERE c.key IN (
        SELECT ${LINE_KEY}
        FROM orders o JOIN json_each(o.lines) l
        WHERE o.id IN (${list(chunk)})
      )`)
      .onConflictDoNothing({ target: charges.key }),
  );
}

/** A usage line as its SubscriptionObject records it, to be written here once (`insertUsageCharges`). */
export interface UsageCharge {
  key: string;
  partnerId: string;
  customerId: string;
  subscriptionId: string;
  product: string;
  quantity: number;
  unitPriceMinor: number;
  periodStart: string;
  periodEnd: string;
  seconds: number;
  /** Decimal text: stored exactly, whatever its size. */
  amountMinor: string;
  currency: string;
  /** The month its period lies in (`YYYY-MM`): usage pieces never cross a month boundary. */
  month: string;
}

/**
 * The statement a usage line goes on: the month its period lies in, unless the cron has already
 * closed that month (`usage_closes`), in which case the month D1 writes it in. A line reaches D1
 * after the month it meters only when its push was delayed past the close (D1 down, a change
 * accepted before the month ended and applied after); it then goes on the open statement, its
 * period still saying what it meters, and a closed statement never changes.
 */
const lineMonth = (month: string) =>
  sql`CASE WHEN EXISTS (SELECT 1 FROM usage_closes WHERE month >= ${month}) THEN ${D1_MONTH} ELSE ${month} END`;

/** Writes usage lines, in one batch; a line already written stays as it is. */
export async function insertUsageCharges(env: Env, lines: readonly UsageCharge[]): Promise<void> {
  const db = database(env);
  const [first, ...rest] = lines.map((l) =>
    db
      .insert(charges)
      .values({
        ...l,
        orderId: null,
        kind: "usage",
        amountMinor: sql`CAST(${l.amountMinor} AS INTEGER)`,
        month: lineMonth(l.month),
      })
      .onConflictDoNothing({ target: charges.key }),
  );
  if (first) await db.batch([first, ...rest]);
}

/** Which lines: those within the caller's scope, narrowed by the rest. */
export interface ChargeFilter {
  scope: Scope;
  customerId?: string | undefined;
  subscriptionId?: string | undefined;
  /** Lines written at or after this instant. */
  since?: Date | undefined;
  /** Lines written before this instant. */
  until?: Date | undefined;
}

/** The position after a line in the ledger's order: oldest first, ties by key. */
export interface ChargePosition {
  createdAt: string;
  key: string;
}

const after = (position: ChargePosition | undefined): SQL | undefined =>
  position === undefined
    ? undefined
    : or(
        gt(charges.createdAt, position.createdAt),
        and(eq(charges.createdAt, position.createdAt), gt(charges.key, position.key)),
      );

/** A page of lines, oldest first (`limit + 1` rows, for `toPage`). */
export async function listCharges(
  env: Env,
  filter: ChargeFilter,
  position: ChargePosition | undefined,
  offset: number,
  limit: number,
): Promise<Charge[]> {
  return database(env)
    .select()
    .from(charges)
    .where(
      and(
        filter.scope.partnerId === null ? undefined : eq(charges.partnerId, filter.scope.partnerId),
        filter.scope.customerId === null ? undefined : eq(charges.customerId, filter.scope.customerId),
        filter.customerId === undefined ? undefined : eq(charges.customerId, filter.customerId),
        filter.subscriptionId === undefined ? undefined : eq(charges.subscriptionId, filter.subscriptionId),
        filter.since === undefined ? undefined : gte(charges.createdAt, filter.since.toISOString()),
        filter.until === undefined ? undefined : lt(charges.createdAt, filter.until.toISOString()),
        after(position),
      ),
    )
    .orderBy(asc(charges.createdAt), asc(charges.key))
    .limit(limit + 1)
    .offset(offset)
    .all();
}

export interface Statement {
  /** Per currency: the sum of the month's lines in minor units, and how many lines there are. */
  totals: { currency: string; amountMinor: bigint; lines: number }[];
  /** A page of the month's lines (`limit + 1` rows). */
  lines: Charge[];
  /** D1's clock when the statement was read: lines are stamped by it, so it decides `closed`. */
  now: Date;
  /** The latest month whose usage the cron has closed, read at the same instant. */
  closedThrough: string | null;
}

/** Where a month's total is split in two to be summed (`readStatement`). */
const SUM_PART = "1000000000";

/** A customer's month: its totals, a page of its lines, and the clock, all read at one instant. */
export async function readStatement(
  env: Env,
  customerId: string,
  month: Month,
  position: ChargePosition | undefined,
  offset: number,
  limit: number,
): Promise<Statement> {
  const db = database(env);
  const scope = and(eq(charges.customerId, customerId), eq(charges.month, month.name));
  const [totals, lines, clock, closes] = await db.batch([
    db
      .select({
        currency: charges.currency,
        // In two parts, each summed within SQLite's 64 bits however many lines a month has (a
        // sum past them fails the query), and joined as a bigint, exact whatever its size.
        high: sql<string>`CAST(sum(${charges.amountMinor} / ${sql.raw(SUM_PART)}) AS TEXT)`,
        low: sql<string>`CAST(sum(${charges.amountMinor} % ${sql.raw(SUM_PART)}) AS TEXT)`,
        lines: sql<number>`count(*)`,
      })
      .from(charges)
      .where(scope)
      .groupBy(charges.currency)
      .orderBy(asc(charges.currency)),
    db
      .select()
      .from(charges)
      .where(and(scope, after(position)))
      .orderBy(asc(charges.createdAt), asc(charges.key))
      .limit(limit + 1)
      .offset(offset),
    db.select({ now: sql<string>`${D1_NOW}` }).from(sql`(SELECT 1)`),
    db.select({ month: sql<string | null>`max(${usageCloses.month})` }).from(usageCloses),
  ]);
  return {
    totals: totals.map((t) => ({
      currency: t.currency,
      amountMinor: BigInt(t.high) * BigInt(SUM_PART) + BigInt(t.low),
      lines: t.lines,
    })),
    lines,
    now: new Date(clock[0]?.now ?? Date.now()),
    closedThrough: closes[0]?.month ?? null,
  };
}

/** The latest month whose usage the cron has closed (`usage_closes`), if any. */
export async function usageClosedThrough(env: Env): Promise<string | null> {
  const row = await database(env)
    .select({ month: sql<string | null>`max(${usageCloses.month})` })
    .from(usageCloses)
    .get();
  return row?.month ?? null;
}

/** Records that every cloud running into `month` was billed up to its end. */
export async function recordUsageClosed(env: Env, month: string): Promise<void> {
  await database(env).insert(usageCloses).values({ month }).onConflictDoNothing().run();
}

/**
 * Claims the sending of `month`'s running clouds to be billed for a run at `now`: true unless
 * another run sent them after `staleBefore` (their messages are still on their way).
 */
export async function claimMonthClose(
  env: Env,
  month: string,
  now: Date,
  staleBefore: Date,
): Promise<boolean> {
  const claimed = await database(env)
    .insert(usageClosings)
    .values({ month, sentAt: now.toISOString() })
    .onConflictDoUpdate({
      target: usageClosings.month,
      set: { sentAt: now.toISOString() },
      setWhere: lte(usageClosings.sentAt, staleBefore.toISOString()),
    })
    .returning({ month: usageClosings.month })
    .get();
  return claimed !== undefined;
}

/** Takes back a claim whose clouds could not all be sent: the next run sends them. */
export async function releaseMonthClose(env: Env, month: string): Promise<void> {
  await database(env).delete(usageClosings).where(eq(usageClosings.month, month)).run();
}
