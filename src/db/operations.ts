import { and, asc, eq, gt, inArray, lt, sql } from "drizzle-orm";
import type { Scope } from "../domain/scope";
import { database, deleteChunked, pageAndTotal } from "./client";
import { type OperationStatus, operations } from "./schema";

export type Operation = typeof operations.$inferSelect;

const RETENTION_MS = 30 * 86_400_000;
const retainedFrom = (at: Date) => new Date(at.getTime() + RETENTION_MS).toISOString();

/** Creates operation `opRef`, or answers it as it is if it exists: a resumed request creates it once. */
export async function createOperation(
  env: Env,
  input: {
    opRef: string;
    partnerId: string;
    customerId: string | null;
    kind: string;
    payload: Record<string, unknown>;
    now: Date;
  },
): Promise<Operation> {
  const at = input.now.toISOString();
  const db = database(env);
  const created = await db
    .insert(operations)
    .values({
      opRef: input.opRef,
      partnerId: input.partnerId,
      customerId: input.customerId,
      kind: input.kind,
      payload: input.payload,
      status: "queued",
      createdAt: at,
      updatedAt: at,
      expiresAt: retainedFrom(input.now),
    })
    .onConflictDoNothing()
    .returning()
    .get();
  if (created) return created;
  const existing = await db.select().from(operations).where(eq(operations.opRef, input.opRef)).get();
  if (!existing) throw new Error(`operation ${input.opRef} neither inserted nor found`);
  return existing;
}

/** The rows of `operations` within `scope`: a customer's key sees only the work for its customer. */
const within = (scope: Scope) =>
  and(
    scope.partnerId === null ? undefined : eq(operations.partnerId, scope.partnerId),
    scope.customerId === null ? undefined : eq(operations.customerId, scope.customerId),
  );

export async function findOperation(env: Env, opRef: string, scope: Scope) {
  return database(env)
    .select()
    .from(operations)
    .where(and(eq(operations.opRef, opRef), within(scope)))
    .get();
}

/** Marks an unfinished operation running; null if it already finished (a redelivery). */
export async function startOperation(env: Env, opRef: string, now: Date): Promise<Operation | null> {
  const row = await database(env)
    .update(operations)
    // A run is not waiting on its vendor (it marks itself waiting again if it still is): a run the
    // vendor's report began that dies is then stalled, and the sweep runs it again.
    .set({
      status: "running",
      waiting: false,
      updatedAt: now.toISOString(),
      attempts: sql`${operations.attempts} + 1`,
    })
    .where(and(eq(operations.opRef, opRef), inArray(operations.status, ["queued", "running"])))
    .returning()
    .get();
  return row ?? null;
}

export async function finishOperation(
  env: Env,
  opRef: string,
  result: { status: OperationStatus; resultBody: string },
  now: Date,
): Promise<void> {
  await database(env)
    .update(operations)
    // Kept from when it finished: counted from its creation, one that took longer than the
    // retention (a backlog, an undo that kept failing) would be forgotten by the next cron run,
    // before its client polled its answer.
    .set({ ...result, updatedAt: now.toISOString(), expiresAt: retainedFrom(now) })
    .where(and(eq(operations.opRef, opRef), inArray(operations.status, ["queued", "running"])))
    .run();
}

/** Which operations a list shows: those within the caller's scope, of one customer and status if asked. */
export interface OperationFilter {
  scope: Scope;
  customer: string | undefined;
  status: OperationStatus | undefined;
}

const matching = (f: OperationFilter) =>
  and(
    within(f.scope),
    f.customer === undefined ? undefined : eq(operations.customerId, f.customer),
    f.status === undefined ? undefined : eq(operations.status, f.status),
  );

/** A page of the operations a list shows, oldest first, and how many it shows in all (a count on its index). */
export function listOperations(
  env: Env,
  q: OperationFilter & { after: string | undefined; offset: number; limit: number },
) {
  const page = database(env)
    .select()
    .from(operations)
    .where(and(matching(q), q.after === undefined ? undefined : gt(operations.opRef, q.after)))
    .orderBy(asc(operations.opRef))
    .limit(q.limit + 1)
    .offset(q.offset);
  return pageAndTotal(env, page, operations, matching(q));
}

/** Forgets finished operations past their retention, a bounded number a run (`deleteChunked`): answers how many. */
export function deleteExpiredOperations(env: Env, now: Date): Promise<number> {
  return deleteChunked(
    env,
    operations,
    and(lt(operations.expiresAt, now.toISOString()), inArray(operations.status, ["succeeded", "failed"])),
  );
}

/**
 * Marks a running operation as waiting on a vendor: not stalled, whatever its age. A run that got
 * here did not fail: its attempts start over, so the runs each vendor report begins (and its push
 * wakes) never use up the attempts of the run that must finish the purchase.
 */
export async function markWaiting(env: Env, opRef: string): Promise<void> {
  await database(env)
    .update(operations)
    .set({ waiting: true, attempts: 0 })
    .where(and(eq(operations.opRef, opRef), eq(operations.status, "running")))
    .run();
}

/**
 * Operations queued or running, not waiting on a vendor, that made no progress since `before`:
 * their message was lost or every delivery died; with `fewerAttempts`, only those that made fewer
 * attempts than it. `limit` at most, the longest stalled first, each claimed (its `updatedAt` set
 * to `now`) in the one statement that finds them, so two sweeps never queue one twice, and a page
 * is one D1 query however many it claims.
 */
export async function claimStalledOperations(
  env: Env,
  before: Date,
  now: Date,
  limit: number,
  fewerAttempts?: number,
): Promise<Operation[]> {
  const db = database(env);
  const stalled = db
    .select({ opRef: operations.opRef })
    .from(operations)
    .where(
      and(
        inArray(operations.status, ["queued", "running"]),
        lt(operations.updatedAt, before.toISOString()),
        eq(operations.waiting, false),
        fewerAttempts === undefined ? undefined : lt(operations.attempts, fewerAttempts),
      ),
    )
    .orderBy(asc(operations.updatedAt))
    .limit(limit);
  return db
    .update(operations)
    .set({ updatedAt: now.toISOString() })
    .where(inArray(operations.opRef, stalled))
    .returning()
    .all();
}

/**
 * Purchases still waiting on a vendor, accepted before `before`, the least recently tried first
 * (`deferWaiting` moves one back). Only those `waiting`: one whose vendor has reported is run (and,
 * should that run die, queued again by the stalled-operation sweep) to the answer its report
 * decides, never undone as unprovisioned.
 */
export async function waitingPurchases(env: Env, before: Date, limit: number): Promise<Operation[]> {
  return database(env)
    .select()
    .from(operations)
    .where(
      and(
        eq(operations.status, "running"),
        eq(operations.waiting, true),
        eq(operations.kind, "purchase"),
        lt(operations.createdAt, before.toISOString()),
      ),
    )
    .orderBy(asc(operations.updatedAt), asc(operations.opRef))
    .limit(limit)
    .all();
}

/** Waiting purchase `opRef` was tried at `now` and failed: the others are tried before it again. */
export async function deferWaiting(env: Env, opRef: string, now: Date): Promise<void> {
  await database(env)
    .update(operations)
    .set({ updatedAt: now.toISOString() })
    .where(and(eq(operations.opRef, opRef), eq(operations.waiting, true)))
    .run();
}

/**
 * SQL: whether a change accepted as an operation and not finished yet would stop the renewal of
 * the `subscriptions` row `row` names: its cancel, or `auto_renew` turned off on a term of its
 * chain (the toggle applies to the term it names and every later one). Such a change was decided
 * before the renewal, and would have applied first had the operations queue kept up: a renewal
 * bought meanwhile would be charged after the partner stopped it. A bare toggle (`toggle`) counts
 * whatever `value` it was accepted with: it flips the flag as it stands when it runs, so one
 * accepted as an on turns the flag off once a change in between (another toggle) turned it on. The
 * cron's claim asks it of each due term (`claimDue`), through `operations_customer_unfinished`,
 * which holds only the operations not finished: a probe of the customer's few, never its history.
 */
export function renewalStopQueued(row: string): string {
  return `exists (select 1 from operations o where o.status in ('queued', 'running')
    and o.partner_id = ${row}.partner_id and o.customer_id = ${row}.customer_id
    and ((o.kind = 'cancel' and json_extract(o.payload, '$.subscription') = ${row}.id)
      or (o.kind = 'auto_renew'
        and (json_extract(o.payload, '$.value') = 0 or json_extract(o.payload, '$.toggle') is not null))
      or (o.kind = 'update' and json_extract(o.payload, '$.autoRenew') = 0))
    and json_extract(o.payload, '$.subscription') in (select c.id from subscriptions c where c.root_id = ${row}.root_id))`;
}
