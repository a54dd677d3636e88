import { and, asc, eq, gt, inArray, isNull, lte, or, type SQL, sql } from "drizzle-orm";
import type { StatusFilter, SubscriptionRecord } from "../domain/subscriptions";
import type { Env } from "../env";
import { database } from "./client";
import { subscriptions } from "./schema";

/** The subscriptions read model: rows are projections pushed by each SubscriptionObject. */

export type SubscriptionRow = typeof subscriptions.$inferSelect;
export type ChainMember = Pick<SubscriptionRow, "id" | "rootId" | "endTime">;

/** Writes a record's projection unless a newer version is already there. */
export async function upsertProjection(env: Env, r: SubscriptionRecord): Promise<void> {
  const row = {
    id: r.id,
    partnerId: r.partnerId,
    customerId: r.customerId,
    product: r.product,
    kind: r.kind,
    amount: r.amount,
    startTime: r.startTime,
    endTime: r.endTime,
    autoRenew: r.autoRenew,
    endedAt: r.endedAt,
    rootId: r.rootId,
    previousId: r.previousId,
    nextId: r.nextId,
    orderId: r.orderId,
    body: r as unknown as Record<string, unknown>,
    version: r.version,
  };
  const { id, ...changes } = row;
  await database(env)
    .insert(subscriptions)
    .values(row)
    .onConflictDoUpdate({
      target: subscriptions.id,
      set: changes,
      setWhere: sql`excluded.version > ${subscriptions.version}`,
    })
    .run();
}

const s = subscriptions;

/** An older depletable of the same customer and product that is not used up: it is consumed first. */
function olderDepletableInUse(): SQL {
  return sql`exists (select 1 from subscriptions older where older.customer_id = ${s.customerId}
    and older.product = ${s.product} and older.ended_at is null and older.id < ${s.id})`;
}

function expired(now: string): SQL | undefined {
  return or(sql`${s.endedAt} is not null`, and(sql`${s.endTime} is not null`, lte(s.endTime, now)));
}

function notExpired(now: string): SQL | undefined {
  return and(isNull(s.endedAt), or(isNull(s.endTime), gt(s.endTime, now)));
}

function statusCondition(status: StatusFilter, now: string): SQL | undefined {
  switch (status) {
    case "all":
      return undefined;
    case "expired":
      return expired(now);
    case "notexpired":
      return notExpired(now);
    case "active":
      return and(
        notExpired(now),
        lte(s.startTime, now),
        sql`not (${s.kind} = 'depletable' and ${olderDepletableInUse()})`,
      );
    case "inactive":
      return and(
        notExpired(now),
        or(gt(s.startTime, now), and(eq(s.kind, "depletable"), olderDepletableInUse())),
      );
  }
}

export interface ListQuery {
  partnerId: string;
  status: StatusFilter;
  products: string[];
  after: string | undefined;
  limit: number;
  now: Date;
  /** Only the first subscription of each extension chain. */
  rootsOnly?: boolean;
}

export async function listSubscriptions(env: Env, q: ListQuery): Promise<SubscriptionRow[]> {
  const now = q.now.toISOString();
  return database(env)
    .select()
    .from(s)
    .where(
      and(
        eq(s.partnerId, q.partnerId),
        q.products.length > 0 ? inArray(s.product, q.products) : undefined,
        q.after === undefined ? undefined : gt(s.id, q.after),
        q.rootsOnly ? isNull(s.previousId) : undefined,
        statusCondition(q.status, now),
      ),
    )
    .orderBy(asc(s.id))
    .limit(q.limit + 1)
    .all();
}

/** Members of the given chains, in chain order (extensions are created later, so ids sort). */
export async function chainMembers(
  env: Env,
  rootIds: readonly string[],
): Promise<Map<string, ChainMember[]>> {
  const chains = new Map<string, ChainMember[]>();
  for (let i = 0; i < rootIds.length; i += 90) {
    const rows = await database(env)
      .select({ id: s.id, rootId: s.rootId, endTime: s.endTime })
      .from(s)
      .where(inArray(s.rootId, rootIds.slice(i, i + 90)))
      .orderBy(asc(s.id))
      .all();
    for (const row of rows) chains.set(row.rootId, [...(chains.get(row.rootId) ?? []), row]);
  }
  return chains;
}

/** Whether an older depletable of the same customer and product is still in use. */
export async function queuedBehindAnother(
  env: Env,
  r: Pick<SubscriptionRecord, "id" | "customerId" | "product">,
) {
  const row = await database(env)
    .select({ id: s.id })
    .from(s)
    .where(
      and(
        eq(s.customerId, r.customerId),
        eq(s.product, r.product),
        isNull(s.endedAt),
        sql`${s.id} < ${r.id}`,
      ),
    )
    .limit(1)
    .get();
  return row !== undefined;
}

/** A customer's depletables of one product that are not used up, oldest (consumed first) first. */
export async function depletionQueue(env: Env, customerId: string, product: string): Promise<string[]> {
  const rows = await database(env)
    .select({ id: s.id })
    .from(s)
    .where(and(eq(s.customerId, customerId), eq(s.product, product), isNull(s.endedAt)))
    .orderBy(asc(s.id))
    .all();
  return rows.map((r) => r.id);
}

/** Whether a customer has any subscription of the given products (a vendor may then see the customer). */
export async function customerHasProducts(env: Env, customerId: string, products: readonly string[]) {
  if (products.length === 0) return false;
  const row = await database(env)
    .select({ id: s.id })
    .from(s)
    .where(and(eq(s.customerId, customerId), inArray(s.product, [...products])))
    .limit(1)
    .get();
  return row !== undefined;
}

/**
 * A page of subscriptions whose term ends by `before` and that nothing follows yet: not ended,
 * not extended. Ordered by (end_time, id) on the `subscriptions_due` index, resuming after a cursor.
 */
export async function dueSubscriptions(
  env: Env,
  before: Date,
  after: { endTime: string; id: string } | null,
  limit: number,
): Promise<Array<{ id: string; endTime: string }>> {
  const rows = await database(env)
    .select({ id: s.id, endTime: s.endTime })
    .from(s)
    .where(
      and(
        sql`${s.endTime} is not null`,
        lte(s.endTime, before.toISOString()),
        isNull(s.endedAt),
        isNull(s.nextId),
        after === null
          ? undefined
          : or(gt(s.endTime, after.endTime), and(eq(s.endTime, after.endTime), gt(s.id, after.id))),
      ),
    )
    .orderBy(asc(s.endTime), asc(s.id))
    .limit(limit)
    .all();
  return rows.flatMap((r) => (r.endTime === null ? [] : [{ id: r.id, endTime: r.endTime }]));
}
