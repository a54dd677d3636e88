import { queueOfReport } from "../db/consumption-queues";
import type { Principal } from "../db/credentials";
import { depletionQueue, queueVerdict } from "../db/depletion-queue";
import { chainMembers, type ListQuery, listSubscriptions } from "../db/subscriptions";
import { mayStillDraw, PARTLY_DRAINED, REPORT_DRAWS_FOR_MS } from "../domain/consumption";
import { AppError, notFound } from "../domain/errors";
import { type TaggedJson, tagJson } from "../domain/etag";
import { jsonText } from "../domain/json";
import { EVERYTHING, type Scope, sees } from "../domain/scope";
import {
  chainEnding,
  chainStatus,
  MAX_LISTED_DESCENDANTS,
  type SubscriptionRecord,
  type SubscriptionWire,
  statusOf,
  toWire,
} from "../domain/subscriptions";
import { subscriptionObject } from "../objects/subscription-object";
import { settleOpenPurchase } from "./recovery";
import { unwrap } from "./subscriptions";

/** Reading subscriptions (one from its object, pages from the D1 read model) and draining depletables. */

/**
 * What a caller sees: everything for an operator, its own customer's rows for a customer-scoped
 * key, its partner's otherwise. Every read and list of the partner API is scoped by this.
 */
export function scopeOf(principal: Principal): Scope {
  if (principal.role === "operator") return EVERYTHING;
  // Only the operator sees every partner: any other credential of no partner sees nothing.
  if (principal.partnerId === null) throw new AppError("forbidden", "this credential belongs to no partner");
  if (principal.role !== "account") return { partnerId: principal.partnerId, customerId: null };
  // A customer-scoped key of no customer would see its whole partner: it sees nothing instead.
  if (principal.subjectId === null) throw new AppError("forbidden", "this key belongs to no customer");
  return { partnerId: principal.partnerId, customerId: principal.subjectId };
}

/** A subscription within `scope`; one outside it does not exist. */
export async function visibleRecord(env: Env, scope: Scope, id: string): Promise<SubscriptionRecord> {
  return within(scope, id, await subscriptionObject(env, id).getJson());
}

/** One subscription as a read answers it, JSON text and ETag: mostly rendered by its object alone. */
export async function readSubscription(
  env: Env,
  scope: Scope,
  id: string,
  now: Date,
): Promise<TaggedJson<SubscriptionWire>> {
  const view = await subscriptionObject(env, id).view(scope, now.getTime());
  if (!view) throw notFound(`subscription ${id} does not exist`);
  if (typeof view === "string") return view;
  return tagJson(jsonText(await present(env, within(scope, id, view.body), now, view.queued)));
}

function within(scope: Scope, id: string, body: string | null): SubscriptionRecord {
  const record = body === null ? null : (JSON.parse(body) as SubscriptionRecord);
  if (!record || !sees(scope, record)) {
    throw notFound(`subscription ${id} does not exist`);
  }
  return record;
}

/**
 * Whether `record`, a live depletable, waits (`inactive`): for its purchase to take effect, or behind
 * an older one of its customer and product in use. Consumption reports drain only one that does not.
 */
export async function waitsInQueue(env: Env, record: SubscriptionRecord): Promise<boolean> {
  return record.kind === "depletable" && record.endedAt === null && (await queueVerdict(env, record)).waits;
}

/**
 * The wire shape of one record, its status and descendants worked out at `now`. `queued`: whether
 * a depletable waits behind an older one, when the caller already knows.
 */
export async function present(
  env: Env,
  record: SubscriptionRecord,
  now: Date,
  queued?: boolean,
): Promise<SubscriptionWire> {
  const behind = queued ?? (await waitsInQueue(env, record));
  // Only a subscription something follows has descendants: the others need no query.
  const chain =
    record.nextId === null ? [] : ((await chainMembers(env, [record.rootId])).get(record.rootId) ?? []);
  const descendants = after(chain, record.id);
  return toWire(record, statusOf(record, now, behind), descendants);
}

/** The ids of the terms after `id` in its chain (`chainMembers` lists them in the chain's order). */
function after(chain: ReadonlyArray<{ id: string }>, id: string, most = chain.length): string[] {
  const index = chain.findIndex((c) => c.id === id);
  const terms = index === -1 ? chain.filter((c) => c.id > id) : chain.slice(index + 1);
  return terms.slice(0, most).map((c) => c.id);
}

/** The auto_renew that decides whether `record`'s chain renews: its last term's, as grouped lists show it. */
export async function chainAutoRenew(env: Env, record: SubscriptionRecord): Promise<boolean> {
  if (record.nextId === null) return record.autoRenew;
  const last = (await chainMembers(env, [record.rootId])).get(record.rootId)?.at(-1);
  return last?.autoRenew ?? record.autoRenew;
}

/**
 * A page of the read model in wire shape; `grouped` answers each chain's first with the chain's
 * end, status and auto_renew (`chainEnding`): the last term's flag is the one that decides whether
 * it renews, while that term lasts.
 */
export async function listPage(env: Env, q: ListQuery, grouped: boolean) {
  const rows = await listSubscriptions(env, { ...q, rootsOnly: grouped });
  const kept = rows.slice(0, q.limit);
  // Chains are looked up only for rows something follows; the others are their own chain.
  const followed = kept.filter(({ record }) => record.nextId !== null).map(({ record }) => record.rootId);
  const chains = await chainMembers(env, [...new Set(followed)]);
  const objects = kept.map(({ record, queued }) => {
    const chain = chains.get(record.rootId) ?? [];
    // A plain row names the terms after it up to a bound: the whole rest of a long chain in every
    // row made a page of 50 terms of a 1,500-term chain 2.9 MB.
    const descendants = after(chain, record.id, grouped ? chain.length : MAX_LISTED_DESCENDANTS);
    const last = chain.at(-1);
    if (!grouped) return toWire(record, statusOf(record, q.now, queued), descendants);
    // A chain is listed by its first term, with the chain's end and the chain's status.
    const status = last ? chainStatus(chain, q.now) : statusOf(record, q.now, queued);
    const wire = toWire(record, status, descendants);
    // A term nothing follows is a chain of its own, shown as any other: one cut short ends then.
    const { endTime, autoRenew } = last ? chainEnding(chain, last) : chainEnding([record], record);
    return { ...wire, end_time: endTime, auto_renew: autoRenew };
  });
  return { rows, objects };
}

/**
 * Spreads consumption report `report` over the customer's depletables of `product`, oldest first.
 * Each object takes what it has left and hands back the rest, so concurrent reports never lose or
 * double-count a unit; and it remembers what it took for `report`, so the same report run again
 * (a resumed retry, a redelivered operation, or both at once) takes nothing twice and answers as
 * the first run did. Every run walks the queue the first one read (`queueOfReport`): one that read
 * its own could find an older depletable whose purchase took effect since, or whose row reached
 * D1 since, and take from it what the first run took from the later ones. `first`: no run of the
 * report began before this one (the request that accepted it, its operation's first attempt).
 * A run too long after the first one began (`mayStillDraw`) could find what that run took
 * forgotten: it draws nothing, and the report is given up (409).
 */
export async function consume(
  env: Env,
  customerId: string,
  product: string,
  quantity: number,
  now: Date,
  report: string,
  first = false,
) {
  let leftover = quantity;
  const touched: SubscriptionRecord[] = [];
  // Remembered from its first run, not from the report's time: a report whose operation waited
  // in a backlog longer than the memory runs again later all the same, and must find it. Any other
  // run knows only that the first one began after the report was accepted.
  const started = new Date();
  const { queue, since } = await queueOfReport(
    env,
    report,
    () => depletionQueue(env, customerId, product, now),
    first ? started : now,
  );
  if (!mayStillDraw(since, started))
    throw new AppError(
      "conflict",
      `the report ran again more than ${REPORT_DRAWS_FOR_MS / 3_600_000} hours after its first run and was given up: ${PARTLY_DRAINED}`,
    );
  for (const id of queue) {
    if (leftover === 0) break;
    const purchase = await purchaseOf(env, id, now);
    if (purchase === "gone") continue;
    // Passed over, it remembers so: another run of the report at the same time passes it over too.
    const result = unwrap(
      await subscriptionObject(env, id).consume(leftover, now, report, purchase === "waits"),
    );
    leftover = result.leftover;
    // One this report passed over (in this run or another) drained nothing: it is not answered.
    if (result.took !== 0) touched.push(result.record);
  }
  return { touched, unallocated: leftover };
}

/**
 * Whether depletable `id`'s purchase took effect (settled here when its records tell), or it
 * `waits`: a vendor has not reported, or its request died before its orders. What it would have
 * covered goes to the next one, or is `unallocated`: drawn from it, the traffic would be billed
 * to nobody should the purchase be undone, and drained to zero, it would release quota its
 * commission never accepted.
 */
async function purchaseOf(env: Env, id: string, now: Date): Promise<"gone" | "waits" | "took effect"> {
  const record = await subscriptionObject(env, id).get();
  if (!record) return "gone";
  try {
    await settleOpenPurchase(env, record, now, "consume");
    return "took effect";
  } catch (error) {
    if (error instanceof AppError && error.kind === "conflict") return "waits";
    throw error;
  }
}
