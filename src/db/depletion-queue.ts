import { and, asc, eq, gte, isNull, or } from "drizzle-orm";
import type { SubscriptionRecord } from "../domain/subscriptions";
import { database } from "./client";
import { subscriptions as s } from "./schema";

/**
 * A customer's depletables of one product in the subscriptions read model, as a queue: the oldest
 * not used up is drained first, and the others wait behind it (`inactive`). Only a depletable
 * queues: a subscription of the product bought as another kind (before the operator made it
 * depletable) is used in its term, never drained.
 */

/**
 * Whether an older depletable (of that kind: `olderDepletableInUse`) of the same customer and
 * product is in use. Plain SQL: every read of a depletable not used up asks it, drizzle would build
 * it each time.
 */
export async function queuedBehindAnother(
  env: Env,
  r: Pick<SubscriptionRecord, "id" | "customerId" | "product">,
): Promise<boolean> {
  const row = await env.DB.prepare(
    "select 1 from subscriptions where customer_id = ?1 and product = ?2 and kind = 'depletable' and ended_at is null and id < ?3 limit 1",
  )
    .bind(r.customerId, r.product, r.id)
    .first();
  return row !== null;
}

/** The depletables of the same customer and product, not used up, that come after `r` in the queue. */
export async function youngerInQueue(
  env: Env,
  r: Pick<SubscriptionRecord, "id" | "customerId" | "product">,
): Promise<string[]> {
  const { results } = await env.DB.prepare(
    "select id from subscriptions where customer_id = ?1 and product = ?2 and kind = 'depletable' and ended_at is null and id > ?3",
  )
    .bind(r.customerId, r.product, r.id)
    .all<{ id: string }>();
  return results.map((row) => row.id);
}

/**
 * A customer's depletables of one product that were not used up at `at`, oldest (consumed first)
 * first: those a consumption report of that time drains, whether or not it already drained them.
 */
export async function depletionQueue(
  env: Env,
  customerId: string,
  product: string,
  at: Date,
): Promise<string[]> {
  const rows = await database(env)
    .select({ id: s.id })
    .from(s)
    .where(
      and(
        eq(s.customerId, customerId),
        eq(s.product, product),
        eq(s.kind, "depletable"),
        or(isNull(s.endedAt), gte(s.endedAt, at.toISOString())),
      ),
    )
    .orderBy(asc(s.id))
    .all();
  return rows.map((r) => r.id);
}
