import { and, asc, desc, eq, gt, inArray, isNull, lt, or, sql } from "drizzle-orm";
import { database, deleteChunked, pageAndTotal } from "./client";
import { products } from "./schema";
import { type DeliveryStatus, webhookAttempts, webhookDeliveries } from "./schema-webhooks";

export type Delivery = typeof webhookDeliveries.$inferSelect;
export type NewDelivery = typeof webhookDeliveries.$inferInsert;
export type Attempt = typeof webhookAttempts.$inferSelect;

/** Records a delivery once: its id is the event's, so a repeated dispatch changes nothing. */
export async function insertDelivery(env: Env, row: NewDelivery): Promise<void> {
  await database(env).insert(webhookDeliveries).values(row).onConflictDoNothing().run();
}

const d = webhookDeliveries;

/** Whether an older event of the same subscription is still undelivered (SQL over `d`). */
const OLDER_PENDING = sql`exists (select 1 from webhook_deliveries o
  where o.subscription_id = ${d.subscriptionId} and o.status = 'pending' and o.sequence < ${d.sequence})`;

/** Pending, due at `at`, and held by no consumer. */
const free = (at: string) =>
  and(
    eq(d.status, "pending"),
    or(isNull(d.lockedUntil), lt(d.lockedUntil, at)),
    or(isNull(d.nextAttemptAt), sql`${d.nextAttemptAt} <= ${at}`),
  );

/**
 * Takes a pending delivery for one attempt, unless another consumer holds it, it is not due yet,
 * or an older event of its subscription is still undelivered (events go out in order); answers
 * the delivery either way so the caller can tell why.
 */
export async function claimDelivery(env: Env, id: string, now: Date, lockMs: number) {
  const at = now.toISOString();
  const claimed = await database(env)
    .update(webhookDeliveries)
    .set({ lockedUntil: new Date(now.getTime() + lockMs).toISOString() })
    .where(and(eq(d.id, id), free(at), sql`not ${OLDER_PENDING}`))
    .returning()
    .get();
  if (claimed) return { claimed: true as const, delivery: claimed };
  const delivery = await database(env)
    .select()
    .from(webhookDeliveries)
    .where(eq(webhookDeliveries.id, id))
    .get();
  return { claimed: false as const, delivery };
}

export async function recordAttempt(
  env: Env,
  delivery: Delivery,
  attempt: Omit<Attempt, "deliveryId" | "attempt">,
  next: { status: DeliveryStatus; nextAttemptAt: string | null },
): Promise<void> {
  const db = database(env);
  const number = delivery.attempts + 1;
  await db.batch([
    db
      .insert(webhookAttempts)
      .values({ deliveryId: delivery.id, attempt: number, ...attempt })
      .onConflictDoNothing(),
    db
      .update(webhookDeliveries)
      .set({
        attempts: number,
        status: next.status,
        nextAttemptAt: next.nextAttemptAt,
        lockedUntil: null,
        lastStatus: attempt.status,
        lastError: attempt.error,
        ...(next.status === "delivered" ? { deliveredAt: attempt.at } : {}),
      })
      .where(eq(webhookDeliveries.id, delivery.id)),
  ]);
}

export async function findDelivery(
  env: Env,
  id: string,
  vendorId: string | null,
): Promise<Delivery | undefined> {
  const scope = vendorId === null ? undefined : eq(webhookDeliveries.vendorId, vendorId);
  return database(env)
    .select()
    .from(webhookDeliveries)
    .where(and(eq(webhookDeliveries.id, id), scope))
    .get();
}

export async function attemptsOf(env: Env, deliveryId: string): Promise<Attempt[]> {
  return database(env)
    .select()
    .from(webhookAttempts)
    .where(eq(webhookAttempts.deliveryId, deliveryId))
    .orderBy(asc(webhookAttempts.attempt))
    .all();
}

/** A page of a vendor's deliveries (null: every vendor's), of one status or all, in id order, and how many there are (one indexed count). */
export function listDeliveries(
  env: Env,
  q: {
    vendorId: string | null;
    status: DeliveryStatus | undefined;
    after: string | undefined;
    offset: number;
    limit: number;
  },
) {
  const matching = and(
    q.vendorId === null ? undefined : eq(webhookDeliveries.vendorId, q.vendorId),
    q.status === undefined ? undefined : eq(webhookDeliveries.status, q.status),
  );
  const page = database(env)
    .select()
    .from(webhookDeliveries)
    .where(and(matching, q.after === undefined ? undefined : gt(webhookDeliveries.id, q.after)))
    .orderBy(asc(webhookDeliveries.id))
    .limit(q.limit + 1)
    .offset(q.offset);
  return pageAndTotal(env, page, webhookDeliveries, matching);
}

/**
 * Puts a delivered or dead delivery back to pending, due `now`, its retry schedule (and its
 * retention horizon) starting over.
 */
export async function requeueDelivery(env: Env, id: string, now: Date): Promise<Delivery | undefined> {
  return database(env)
    .update(webhookDeliveries)
    .set({
      status: "pending",
      deliveredAt: null,
      nextAttemptAt: now.toISOString(),
      lockedUntil: null,
      scheduleBase: sql`${webhookDeliveries.attempts}`,
      scheduleStartedAt: now.toISOString(),
    })
    .where(and(eq(webhookDeliveries.id, id), sql`${webhookDeliveries.status} in ('delivered', 'dead')`))
    .returning()
    .get();
}

/**
 * The undelivered event `delivery` waits for: the newest older pending one of its subscription,
 * whose completion wakes it (`wakeNext`).
 */
export async function olderPending(env: Env, delivery: Pick<Delivery, "subscriptionId" | "sequence">) {
  return database(env)
    .select({ id: d.id, nextAttemptAt: d.nextAttemptAt })
    .from(d)
    .where(
      and(
        eq(d.subscriptionId, delivery.subscriptionId),
        eq(d.status, "pending"),
        lt(d.sequence, delivery.sequence),
      ),
    )
    .orderBy(desc(d.sequence))
    .limit(1)
    .get();
}

/**
 * Sets a free, due delivery to look again at `nextAttemptAt` while an older event of its
 * subscription is undelivered; false if that is no longer so (the older one finished, or another
 * consumer took it or moved it), checked in the same statement.
 */
export async function deferDelivery(env: Env, id: string, nextAttemptAt: string, now: Date) {
  const deferred = await database(env)
    .update(d)
    .set({ nextAttemptAt })
    .where(and(eq(d.id, id), free(now.toISOString()), OLDER_PENDING))
    .returning({ id: d.id })
    .get();
  return deferred !== undefined;
}

/**
 * Makes the next undelivered event of `delivery`'s subscription due `now`: it waited for this one,
 * which was just delivered or died. Answers it, if there is one.
 */
export async function wakeNext(env: Env, delivery: Pick<Delivery, "subscriptionId" | "sequence">, now: Date) {
  const next = database(env)
    .select({ id: d.id })
    .from(d)
    .where(
      and(
        eq(d.subscriptionId, delivery.subscriptionId),
        eq(d.status, "pending"),
        gt(d.sequence, delivery.sequence),
      ),
    )
    .orderBy(asc(d.sequence))
    .limit(1);
  return database(env)
    .update(d)
    .set({ nextAttemptAt: now.toISOString() })
    .where(and(eq(d.id, sql`(${next})`), eq(d.status, "pending")))
    .returning({ id: d.id, nextAttemptAt: d.nextAttemptAt })
    .get();
}

/**
 * Pending deliveries that should have been attempted before `before` and that no consumer holds: their
 * message was lost (a send that failed after an attempt, a first message that never arrived or ran
 * out of retries before any attempt was recorded, a message from before messages said when they
 * were due). A delivery never attempted was due when it was made. At most `limit`, oldest due
 * first (the `webhook_deliveries_due` index).
 */
export async function overdueDeliveries(env: Env, before: Date, now: Date, limit: number) {
  const due = sql<string>`coalesce(${d.nextAttemptAt}, ${d.createdAt})`;
  return database(env)
    .select({ id: d.id, nextAttemptAt: d.nextAttemptAt })
    .from(d)
    .where(
      and(
        eq(d.status, "pending"),
        or(
          lt(d.nextAttemptAt, before.toISOString()),
          and(isNull(d.nextAttemptAt), lt(d.createdAt, before.toISOString())),
        ),
        or(isNull(d.lockedUntil), lt(d.lockedUntil, now.toISOString())),
      ),
    )
    .orderBy(asc(due))
    .limit(limit)
    .all();
}

/**
 * The backlog per endpoint: pending deliveries, and when the oldest was made, of every product
 * pushing to it (a vendor's own, or all for null).
 */
export async function backlog(env: Env, vendorId: string | null) {
  return database(env)
    .select({
      endpoint: products.endpoint,
      pending: sql<number>`count(*)`,
      oldest: sql<string>`min(${d.createdAt})`,
    })
    .from(d)
    .leftJoin(products, eq(products.id, d.product))
    .where(and(eq(d.status, "pending"), vendorId === null ? undefined : eq(d.vendorId, vendorId)))
    .groupBy(products.endpoint)
    .orderBy(products.endpoint)
    .all();
}

/** Where and how a syndicated product's events are delivered. */
export async function syndicationOf(env: Env, productId: string) {
  return database(env)
    .select({
      vendorId: products.vendorId,
      endpoint: products.endpoint,
      signingSecret: products.signingSecret,
      previousSecret: products.previousSecret,
      previousSecretExpiresAt: products.previousSecretExpiresAt,
      olderSecrets: products.olderSecrets,
    })
    .from(products)
    .where(eq(products.id, productId))
    .get();
}

/**
 * Forgets the deliveries that are over (delivered or dead) whose retention horizon passed: their
 * schedule last started (made, or redelivered) before `before`. And every attempt made before it,
 * a delivery redelivered since keeping its later ones. A bounded number a run (`deleteChunked`).
 */
export async function deleteExpiredDeliveries(env: Env, before: Date): Promise<number> {
  const cutoff = before.toISOString();
  const attempts = await deleteChunked(env, webhookAttempts, lt(webhookAttempts.at, cutoff));
  const deliveries = await deleteChunked(
    env,
    webhookDeliveries,
    and(
      inArray(webhookDeliveries.status, ["delivered", "dead"]),
      lt(webhookDeliveries.createdAt, cutoff),
      or(isNull(webhookDeliveries.scheduleStartedAt), lt(webhookDeliveries.scheduleStartedAt, cutoff)),
    ),
  );
  return attempts + deliveries;
}
