import { and, asc, eq, gt, isNull, lt, or, sql } from "drizzle-orm";
import { database } from "./client";
import { type DeliveryStatus, products, webhookAttempts, webhookDeliveries } from "./schema";

export type Delivery = typeof webhookDeliveries.$inferSelect;
export type NewDelivery = typeof webhookDeliveries.$inferInsert;
export type Attempt = typeof webhookAttempts.$inferSelect;

/** Records a delivery once: its id is the event's, so a repeated dispatch changes nothing. */
export async function insertDelivery(env: Env, row: NewDelivery): Promise<void> {
  await database(env).insert(webhookDeliveries).values(row).onConflictDoNothing().run();
}

/**
 * Takes a pending delivery for one attempt, unless another consumer holds it or it is not due
 * yet; answers the delivery either way so the caller can tell why.
 */
export async function claimDelivery(env: Env, id: string, now: Date, lockMs: number) {
  const at = now.toISOString();
  const claimed = await database(env)
    .update(webhookDeliveries)
    .set({ lockedUntil: new Date(now.getTime() + lockMs).toISOString() })
    .where(
      and(
        eq(webhookDeliveries.id, id),
        eq(webhookDeliveries.status, "pending"),
        or(isNull(webhookDeliveries.lockedUntil), lt(webhookDeliveries.lockedUntil, at)),
        or(isNull(webhookDeliveries.nextAttemptAt), sql`${webhookDeliveries.nextAttemptAt} <= ${at}`),
      ),
    )
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

export async function listDeliveries(
  env: Env,
  q: {
    vendorId: string | null;
    status: DeliveryStatus | undefined;
    after: string | undefined;
    limit: number;
  },
) {
  return database(env)
    .select()
    .from(webhookDeliveries)
    .where(
      and(
        q.vendorId === null ? undefined : eq(webhookDeliveries.vendorId, q.vendorId),
        q.status === undefined ? undefined : eq(webhookDeliveries.status, q.status),
        q.after === undefined ? undefined : gt(webhookDeliveries.id, q.after),
      ),
    )
    .orderBy(asc(webhookDeliveries.id))
    .limit(q.limit + 1)
    .all();
}

/** Puts a delivered or dead delivery back to pending, its retry schedule starting over. */
export async function requeueDelivery(env: Env, id: string): Promise<Delivery | undefined> {
  return database(env)
    .update(webhookDeliveries)
    .set({
      status: "pending",
      nextAttemptAt: null,
      lockedUntil: null,
      scheduleBase: sql`${webhookDeliveries.attempts}`,
    })
    .where(and(eq(webhookDeliveries.id, id), sql`${webhookDeliveries.status} in ('delivered', 'dead')`))
    .returning()
    .get();
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
    })
    .from(products)
    .where(eq(products.id, productId))
    .get();
}
