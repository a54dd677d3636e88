import { and, asc, eq, getTableColumns, gt, inArray, sql } from "drizzle-orm";
import type { SQLiteInsertValue } from "drizzle-orm/sqlite-core";
import type { Scope } from "../domain/scope";
import { completedOrderCharges, completedOrderChargesOfOne, reversalCharges } from "./charges";
import { builtOnce, database, pageAndTotal, parameterChunks, rowChunks } from "./client";
import { type OrderLine, orders } from "./schema";

export type Order = typeof orders.$inferSelect;

/**
 * Writes orders (a row already there stays as it is). Orders written `completed` write their
 * charge lines in the same batch: an order is never completed without its lines.
 */
export async function insertOrders(env: Env, rows: Order[]): Promise<void> {
  if (rows.length === 0) return;
  // Lines are JSON in one column, so a row binds few parameters: a statement per chunk of orders
  // (each statement of a batch is a D1 query of the invocation's 1,000: a purchase, or its undo, of
  // 500 customers writes its orders in 42, not 500), one batch.
  const db = database(env);
  const completed = rows.filter((row) => row.state === "completed").map((row) => row.id);
  const inserts = rowChunks(rows, ORDER_COLUMNS).map((chunk) =>
    db.insert(orders).values(chunk).onConflictDoNothing(),
  );
  const [first, ...rest] = [...inserts, ...completedOrderCharges(db, completed)];
  if (first) await db.batch([first, ...rest]);
}

const ORDER_COLUMNS = Object.keys(getTableColumns(orders)).length;

/**
 * The statements of `insertOrders([order])`, for a batch of the caller's: a purchase of one
 * subscription writes its order with the subscription's projection (`SubscriptionStore.ride`).
 */
export function orderWrites(env: Env, order: Order): D1PreparedStatement[] {
  const insert = orderInsert(env, order);
  return order.state === "completed"
    ? [insert, completedOrderChargesOfOne(env, { order: order.id })]
    : [insert];
}

const orderInsert = builtOnce((db) =>
  db
    .insert(orders)
    .values(
      Object.fromEntries(
        Object.keys(getTableColumns(orders)).map((key) => [key, sql.placeholder(key)]),
      ) as SQLiteInsertValue<typeof orders>,
    )
    .onConflictDoNothing(),
);

/**
 * Moves orders to `state`, all or none, with what that means for the charges ledger in the same
 * batch: completed orders write their lines; failed ones reverse the lines they wrote (a purchase
 * undone after it was written completed). One statement per chunk of ids.
 */
export async function setOrdersState(env: Env, ids: readonly string[], state: Order["state"]): Promise<void> {
  const db = database(env);
  const [first, ...rest] = parameterChunks(ids, 1).map((chunk) =>
    db.update(orders).set({ state }).where(inArray(orders.id, chunk)),
  );
  const ledger =
    state === "completed"
      ? completedOrderCharges(db, ids)
      : state === "failed"
        ? reversalCharges(db, ids)
        : [];
  if (first) await db.batch([first, ...rest, ...ledger]);
}

/**
 * Rewrites the lines and total of orders that are still pending, before they complete: a term
 * that waited for its vendor is charged for the term it gets. A completed or failed order stays
 * as it is.
 */
export async function setPendingOrderLines(
  env: Env,
  rows: ReadonlyArray<Pick<Order, "id" | "lines" | "totalMinor">>,
): Promise<void> {
  const db = database(env);
  const [first, ...rest] = rows.map((row) =>
    db
      .update(orders)
      .set({ lines: row.lines, totalMinor: row.totalMinor })
      .where(and(eq(orders.id, row.id), eq(orders.state, "pending"))),
  );
  if (first) await db.batch([first, ...rest]);
}

export async function findOrders(env: Env, ids: string[]): Promise<Order[]> {
  // A purchase has an order per customer, up to 500: a statement per chunk of ids.
  const found: Order[] = [];
  for (const chunk of parameterChunks(ids, 0)) {
    found.push(...(await database(env).select().from(orders).where(inArray(orders.id, chunk)).all()));
  }
  return found;
}

/** The rows of `orders` within `scope`. */
const within = (scope: Scope) =>
  and(
    scope.partnerId === null ? undefined : eq(orders.partnerId, scope.partnerId),
    scope.customerId === null ? undefined : eq(orders.customerId, scope.customerId),
  );

export async function findOrder(env: Env, id: string, scope: Scope): Promise<Order | undefined> {
  return database(env)
    .select()
    .from(orders)
    .where(and(eq(orders.id, id), within(scope)))
    .get();
}

/** Which orders a list shows: those within the caller's scope, of one customer if `customer` names one. */
export interface OrderFilter {
  scope: Scope;
  customer: string | undefined;
}

const matching = (f: OrderFilter) =>
  and(within(f.scope), f.customer === undefined ? undefined : eq(orders.customerId, f.customer));

/** A page of the orders a list shows, in id order, and how many it shows in all (a count on `orders_partner` or `orders_customer`). */
export function listOrders(
  env: Env,
  q: OrderFilter & { after: string | undefined; offset: number; limit: number },
) {
  const page = database(env)
    .select()
    .from(orders)
    .where(and(matching(q), q.after === undefined ? undefined : gt(orders.id, q.after)))
    .orderBy(asc(orders.id))
    .limit(q.limit + 1)
    .offset(q.offset);
  return pageAndTotal(env, page, orders, matching(q));
}

export type { OrderLine };
