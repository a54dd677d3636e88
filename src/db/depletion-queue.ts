import { and, asc, eq, gte, isNull, or } from "drizzle-orm";
import type { SubscriptionRecord } from "../domain/subscriptions";
import { database } from "./client";
import { subscriptions as s } from "./schema";

/**
 * A customer's depletables of one product in the subscriptions read model, as a queue: the oldest
 * not used up whose purchase took effect is drained first, and the others wait behind it
 * (`inactive`), as does one whose purchase has not taken effect. Only a depletable queues: a
 * subscription of the product bought as another kind (before the operator made it depletable) is
 * used in its term, never drained.
 */

/**
 * Whether a depletable's purchase took effect, in the read model: its order is completed. One whose
 * purchase has not (its vendor has not reported, or its request died before its orders) is passed
 * over by consumption reports (`consume`): it is not in use, and nothing waits behind it.
 */
const purchaseInEffect = (row: string) =>
  `exists (select 1 from orders bought where bought.id = ${row}.order_id and bought.state = 'completed')`;

/**
 * Whether an older depletable of the row named `row`'s customer and product is live (not used up)
 * and, with `inUse`, its purchase took effect. Only a depletable queues one: a subscription of the
 * product bought as another kind (before the operator made it depletable) is used in its term,
 * never drained.
 */
const olderDepletable = (row: string, inUse: boolean) => `exists (select 1 from subscriptions older
  where older.customer_id = ${row}.customer_id and older.product = ${row}.product
    and older.kind = 'depletable' and older.ended_at is null and older.id < ${row}.id
    ${inUse ? `and ${purchaseInEffect("older")}` : ""})`;

/**
 * Whether the live depletable of the row named `row` waits (`inactive`): its purchase has not taken
 * effect, or an older one is in use. Consumption reports drain only one that does not wait.
 */
export const depletableWaits = (row: string) =>
  `(not ${purchaseInEffect(row)} or ${olderDepletable(row, true)})`;

/**
 * The verdict's three facts of the depletable bound as ?1 (customer), ?2 (product), ?3 (id) and ?4
 * (order), which need not be in the read model yet. Plain SQL, built once: every read of a
 * depletable not used up whose verdict is not kept asks it.
 */
const VERDICT = `select ${purchaseInEffect("me")} as own, ${olderDepletable("me", true)} as behind,
  ${olderDepletable("me", false)} as queued
  from (select ?1 as customer_id, ?2 as product, ?3 as id, ?4 as order_id) me`;

/**
 * Whether live depletable `r` waits (`depletableWaits`), and whether that verdict `lasts` until a
 * depletable before it is created or ends (which each tells the ones after it): so when its own
 * purchase took effect and an older one is in use, or none is live. While its own purchase, or an
 * older one's, may still take effect, it does not last.
 */
export async function queueVerdict(
  env: Env,
  r: Pick<SubscriptionRecord, "id" | "customerId" | "product" | "orderId">,
): Promise<{ waits: boolean; lasts: boolean }> {
  const row = await env.DB.prepare(VERDICT)
    .bind(r.customerId, r.product, r.id, r.orderId)
    .first<{ own: number; behind: number; queued: number }>();
  const own = row?.own === 1;
  const behind = row?.behind === 1;
  return { waits: !own || behind, lasts: own && (behind || row?.queued !== 1) };
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
 * Whether customer `customerId` holds a live depletable of `product`, bought as one whatever the
 * product is sold as now: the operator may have made it another kind since, and what the customer
 * bought is still drained by its consumption reports.
 */
export async function holdsDepletable(env: Env, customerId: string, product: string): Promise<boolean> {
  const row = await database(env)
    .select({ id: s.id })
    .from(s)
    .where(
      and(eq(s.customerId, customerId), eq(s.product, product), eq(s.kind, "depletable"), isNull(s.endedAt)),
    )
    .limit(1)
    .get();
  return row !== undefined;
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
