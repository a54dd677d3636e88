import { and, asc, desc, eq, getTableColumns, gt, inArray, lt, or, sql } from "drizzle-orm";
import type { SQLiteInsertValue } from "drizzle-orm/sqlite-core";
import { isRunning } from "../domain/metering";
import type { Scope } from "../domain/scope";
import type { StatusFilter, SubscriptionRecord } from "../domain/subscriptions";
import { builtOnce, D1_MAX_PARAMETERS, database, parameterChunks } from "./client";
import { depletableWaits } from "./depletion-queue";
import { refollow } from "./due-terms";
import { subscriptions } from "./schema";

/** The subscriptions read model: rows are projections pushed by each subscription's shard. */

export type SubscriptionRow = typeof subscriptions.$inferSelect;
export type ChainMember = Pick<
  SubscriptionRow,
  "id" | "rootId" | "startTime" | "endTime" | "endedAt" | "autoRenew"
>;

/**
 * Where the read model puts the start of a subscription waiting for its vendor: its term starts
 * when it is deployed, so every filter reads it as not started (`inactive`) and, with no end
 * time, as neither over nor due for renewal. Its record keeps the term as bought until then.
 */
const NOT_STARTED = "9999-12-31T23:59:59.999Z";

/**
 * Writes records' projections, in one batch, each unless a newer version is already there, and
 * sets `followed` of them and the terms before them (`refollow`); then `alongside`, statements
 * that must land in the same batch (an order written with its subscription).
 */
export async function upsertProjections(
  env: Env,
  records: readonly SubscriptionRecord[],
  alongside: readonly D1PreparedStatement[] = [],
): Promise<void> {
  const terms = records.flatMap((r) => (r.previousId === null ? [r.id] : [r.id, r.previousId]));
  await env.DB.batch([
    ...records.map((r) => projectionUpsert(env, projectionRow(r))),
    refollow(env, terms),
    ...alongside,
  ]);
}

/** A projection's columns: all but `followed`, which the batch sets from the rows (`refollow`). */
type ProjectedRow = Required<Omit<NewSubscriptionRow, "followed">>;

function projectionRow(r: SubscriptionRecord): ProjectedRow {
  const waiting = r.deploymentStatus === "PENDING" && r.endedAt === null;
  return {
    id: r.id,
    partnerId: r.partnerId,
    customerId: r.customerId,
    product: r.product,
    kind: r.kind,
    amount: r.amount,
    startTime: waiting ? NOT_STARTED : r.startTime,
    endTime: waiting ? null : r.endTime,
    autoRenew: r.autoRenew,
    endedAt: r.endedAt,
    rootId: r.rootId,
    previousId: r.previousId,
    nextId: r.nextId,
    orderId: r.orderId,
    body: r as unknown as Record<string, unknown>,
    version: r.version,
    runningSince: r.kind === "caas" && isRunning(r.runs) ? (r.runs.at(-1)?.start ?? null) : null,
    // The term changed since a run enqueued its renewal (it was planned, renewed, expired, or
    // given back): the next run looks at it again.
    renewalQueuedUntil: null,
  };
}

type NewSubscriptionRow = typeof subscriptions.$inferInsert;

/** The projection's upsert (`followed` aside): a conflict takes the new values from `excluded`, unless older. */
const projectionUpsert = builtOnce((db) => {
  const columns = Object.entries(getTableColumns(subscriptions)).filter(([key]) => key !== "followed");
  return db
    .insert(subscriptions)
    .values(
      Object.fromEntries(columns.map(([key]) => [key, sql.placeholder(key)])) as SQLiteInsertValue<
        typeof subscriptions
      >,
    )
    .onConflictDoUpdate({
      target: subscriptions.id,
      set: Object.fromEntries(
        columns
          .filter(([key]) => key !== "id")
          .map(([key, c]) => [key, sql`excluded.${sql.identifier(c.name)}`]),
      ),
      setWhere: sql`excluded.version > ${subscriptions.version}`,
    });
});

const s = subscriptions;

/** Whether a live depletable waits behind an older one, or for its purchase (`depletableWaits`). */
const DEPLETABLE_WAITS = depletableWaits("subscriptions");

/**
 * The record as a list reads it: a cloud's run history (up to `MAX_RUN_INTERVALS`, some 200 KB)
 * cut to its last interval, the only one a listed cloud shows (`run_state`). Read whole, a page
 * of 500 such clouds was over 100 MB in one invocation, past the 128 MB a Worker may hold. Only
 * a cloud's record is looked into: another's is read as it is, with no JSON parsed in SQL.
 */
const LISTED_BODY = `case when kind = 'caas' and json_array_length(body, '$.runs') > 1
  then json_set(body, '$.runs', json_array(json(json_extract(body, '$.runs[#-1]')))) else body end`;

/** A status filter as SQL over the row named `row`; `now` names the parameter of the instant. */
function statusSql(status: Exclude<StatusFilter, "all">, now: string, row = "subscriptions"): string {
  const notExpired = `${row}.ended_at is null and (${row}.end_time is null or ${row}.end_time > ${now})`;
  switch (status) {
    case "expired":
      return `(${row}.ended_at is not null or (${row}.end_time is not null and ${row}.end_time <= ${now}))`;
    case "notexpired":
      return `(${notExpired})`;
    case "active":
      return `(${notExpired} and ${row}.start_time <= ${now} and (${row}.kind <> 'depletable' or not ${depletableWaits(row)}))`;
    case "inactive":
      return `(${notExpired} and (${row}.start_time > ${now} or (${row}.kind = 'depletable' and ${depletableWaits(row)})))`;
  }
}

/**
 * A status filter over a chain's first row, as the chain stands (`chainStatus`): active while one
 * of its terms is, else inactive while one is still to come, else expired.
 */
function chainStatusSql(status: Exclude<StatusFilter, "all">, now: string): string {
  const some = (s: "active" | "inactive" | "notexpired") =>
    `exists (select 1 from subscriptions term where term.root_id = subscriptions.id and ${statusSql(s, now, "term")})`;
  switch (status) {
    case "expired":
      return `not ${some("notexpired")}`;
    case "notexpired":
      return some("notexpired");
    case "active":
      return some("active");
    case "inactive":
      return `(not ${some("active")} and ${some("inactive")})`;
  }
}

export interface ListQuery {
  /** A partner's, or within it one customer's (a customer-scoped key); every partner's (the operator). */
  scope: Scope;
  /** Only this customer's (`?customer=`); within the scope, so another's answers nothing. */
  customer?: string | undefined;
  status: StatusFilter;
  products: string[];
  after: string | undefined;
  /** Rows skipped before the page (the dialect's `offset`; 0 when paging by cursor). */
  offset: number;
  limit: number;
  now: Date;
  /** Only the first subscription of each extension chain. */
  rootsOnly?: boolean;
}

/** A listed subscription: its record, and whether it waits as a depletable (`depletableWaits`: its status needs that). */
export interface ListedSubscription {
  record: SubscriptionRecord;
  queued: boolean;
}

/** What a list statement binds besides its products: partner, scope, customer, cursor, now, limit, offset. */
const LIST_OTHER_PARAMETERS = 7;

/**
 * Up to `limit + 1` of a partner's subscriptions in id order, past `offset` of them. Every list request runs this, so it
 * is plain SQL rather than built by drizzle on each call, and it reads only the record (`LISTED_BODY`).
 * It walks `subscriptions_list`, which answers every filter; the depletion check costs nothing for
 * rows that are not depletable.
 */
export async function listSubscriptions(env: Env, q: ListQuery): Promise<ListedSubscription[]> {
  const params: unknown[] = [];
  const param = (value: unknown) => `?${params.push(value)}`;
  const where: string[] = [];
  // The operator's list walks every partner's rows in id order (the primary key).
  if (q.scope.partnerId !== null) where.push(`partner_id = ${param(q.scope.partnerId)}`);
  // One customer's rows walk `subscriptions_customer` instead, in the same order.
  if (q.scope.customerId !== null) where.push(`customer_id = ${param(q.scope.customerId)}`);
  if (q.customer !== undefined) where.push(`customer_id = ${param(q.customer)}`);
  // A page cannot be split across statements: the filter is bounded (MAX_FILTER_VALUES) instead,
  // and a product named twice (an alias and its id) is bound once.
  const products = [...new Set(q.products)];
  if (products.length > D1_MAX_PARAMETERS - LIST_OTHER_PARAMETERS) {
    throw new RangeError(`a list filters on at most ${D1_MAX_PARAMETERS - LIST_OTHER_PARAMETERS} products`);
  }
  if (products.length > 0) where.push(`product in (${products.map(param).join(", ")})`);
  if (q.after !== undefined) where.push(`id > ${param(q.after)}`);
  if (q.rootsOnly) where.push("previous_id is null");
  if (q.status !== "all") {
    const now = param(q.now.toISOString());
    where.push(q.rootsOnly ? chainStatusSql(q.status, now) : statusSql(q.status, now));
  }
  const rows = await env.DB.prepare(
    `select ${LISTED_BODY}, case when kind = 'depletable' and ended_at is null then ${DEPLETABLE_WAITS} else 0 end
     from subscriptions ${where.length > 0 ? `where ${where.join(" and ")}` : ""} order by id limit ${param(q.limit + 1)} offset ${param(q.offset)}`,
  )
    .bind(...params)
    .raw<[string, number]>();
  return rows.map(([body, queued]) => ({
    record: JSON.parse(body) as SubscriptionRecord,
    queued: queued === 1,
  }));
}

/** Whether the read model has subscription `id`: it was created, by this shard or before shards. */
export async function inReadModel(env: Env, id: string): Promise<boolean> {
  return (await env.DB.prepare("SELECT 1 FROM subscriptions WHERE id = ?").bind(id).first()) !== null;
}

/** The version the read model has of each of `ids` (absent: none); a statement per chunk of them. */
export async function projectedVersions(env: Env, ids: readonly string[]): Promise<Map<string, number>> {
  const versions = new Map<string, number>();
  for (const chunk of parameterChunks(ids, 1)) {
    const rows = await database(env)
      .select({ id: s.id, version: s.version })
      .from(s)
      .where(inArray(s.id, chunk))
      .all();
    for (const row of rows) versions.set(row.id, row.version);
  }
  return versions;
}

/**
 * Chain `rootId`'s terms but `id` live at `now` in the read model: not ended, and not over, or over
 * but auto-renewing with nothing created after it yet (its renewal, or its expiry, is on its way).
 * An end committed but not pushed yet is not in it: each term's record decides (`endsChainHold`).
 */
export async function otherLiveTerms(env: Env, rootId: string, id: string, now: Date): Promise<string[]> {
  const rows = await env.DB.prepare(
    `SELECT id FROM subscriptions AS s WHERE root_id = ? AND id != ? AND ended_at IS NULL AND (end_time IS NULL
       OR end_time > ? OR (auto_renew = 1 AND NOT EXISTS (SELECT 1 FROM subscriptions n WHERE n.id = s.next_id)))`,
  )
    .bind(rootId, id, now.toISOString())
    .all<{ id: string }>();
  return rows.results.map((row) => row.id);
}

/** Members of the given chains, in chain order (extensions are created later, so ids sort). */
export async function chainMembers(
  env: Env,
  rootIds: readonly string[],
): Promise<Map<string, ChainMember[]>> {
  const chains = new Map<string, ChainMember[]>();
  for (const chunk of parameterChunks(rootIds, 0)) {
    const rows = await database(env)
      .select({
        id: s.id,
        rootId: s.rootId,
        startTime: s.startTime,
        endTime: s.endTime,
        endedAt: s.endedAt,
        autoRenew: s.autoRenew,
      })
      .from(s)
      // An extension whose purchase was undone was never part of the chain.
      .where(
        and(inArray(s.rootId, chunk), sql`coalesce(json_extract(${s.body}, '$.endReason'), '') != 'failed'`),
      )
      // In the chain's order: each term starts where the one before ends. Ids need not say it: an
      // extension's id is chosen when it is accepted (a 202 run later, a keyed retry), and another
      // extension answered meanwhile can come before it.
      .orderBy(asc(s.startTime), asc(s.id))
      .all();
    // Appended in place: a copy of the chain per row was work quadratic in the chain's length.
    for (const row of rows) {
      const chain = chains.get(row.rootId);
      if (chain) chain.push(row);
      else chains.set(row.rootId, [row]);
    }
  }
  return chains;
}

/**
 * The last term of chain `rootId` as the read model has it (in `chainMembers`' order), or null:
 * one statement, where walking the chain's objects from its first term is a call per term.
 */
export async function chainLastTerm(env: Env, rootId: string): Promise<string | null> {
  const row = await database(env)
    .select({ id: s.id })
    .from(s)
    .where(and(eq(s.rootId, rootId), sql`coalesce(json_extract(${s.body}, '$.endReason'), '') != 'failed'`))
    .orderBy(desc(s.startTime), desc(s.id))
    .limit(1)
    .get();
  return row?.id ?? null;
}

/** Whether a customer has any subscription of the given products (a vendor may then see the customer). */
export async function customerHasProducts(env: Env, customerId: string, products: readonly string[]) {
  // A vendor may have any number of products: each statement binds the customer, a chunk and its limit.
  for (const chunk of parameterChunks(products, 2)) {
    const row = await database(env)
      .select({ id: s.id })
      .from(s)
      .where(and(eq(s.customerId, customerId), inArray(s.product, chunk)))
      .limit(1)
      .get();
    if (row !== undefined) return true;
  }
  return false;
}

/** Whether any CaaS cloud runs since before `before` (epoch ms), as the read model shows them. */
export async function anyRunningSince(env: Env, before: number): Promise<boolean> {
  const row = await database(env)
    .select({ id: s.id })
    .from(s)
    .where(and(sql`${s.runningSince} is not null`, lt(s.runningSince, before)))
    .limit(1)
    .get();
  return row !== undefined;
}

/**
 * CaaS clouds running since before `before` (epoch ms), as the read model shows them, a page at a
 * time after `after` (the `subscriptions_running` index: only running clouds are in it).
 */
export async function runningSince(
  env: Env,
  before: number,
  after: { runningSince: number; id: string } | null,
  limit: number,
): Promise<Array<{ id: string; runningSince: number }>> {
  const rows = await database(env)
    .select({ id: s.id, runningSince: s.runningSince })
    .from(s)
    .where(
      and(
        sql`${s.runningSince} is not null`,
        lt(s.runningSince, before),
        after === null
          ? undefined
          : or(
              gt(s.runningSince, after.runningSince),
              and(eq(s.runningSince, after.runningSince), gt(s.id, after.id)),
            ),
      ),
    )
    .orderBy(asc(s.runningSince), asc(s.id))
    .limit(limit)
    .all();
  return rows.flatMap((r) => (r.runningSince === null ? [] : [{ id: r.id, runningSince: r.runningSince }]));
}
