import { findCustomers, ownCustomers } from "../db/customers";
import { insertOrders, type Order, setOrdersState, setPendingOrderLines } from "../db/orders";
import type { Product } from "../domain/catalog";
import type { TermChargeKind } from "../domain/charges";
import { homeOf } from "../domain/commissions";
import { AppError, badRequest, describeFieldErrors, fromErrorWire } from "../domain/errors";
import { fault } from "../domain/faults";
import { subscriptionId, uuidv7 } from "../domain/ids";
import {
  type PlannedSubscription,
  type PurchaseObject,
  plannedRecord,
  planPurchase,
} from "../domain/purchase";
import type { SubscriptionRecord } from "../domain/subscriptions";
import { CommissionRejected, type IssueInput, issueCommission } from "../objects/commission-issue";
import { subscriptionObject } from "../objects/subscription-object";
import type { Outcome } from "../objects/subscription-outcome";
import { catalogKnowing } from "./catalog";
import { followedUp, settleReferenced } from "./commissions";
import { emptyOrder, purchaseOrders } from "./purchase-orders";
import { quotaError } from "./quota-error";

/**
 * Buying, extending and reading subscriptions: the steps that span the catalog, the customers'
 * quota ledgers, the orders and the subscriptions' own objects.
 */

/**
 * The ids a purchase will create, chosen before anything is written: a purchase run again with
 * the same ids (a redelivered operation) finds what the first run made instead of buying twice.
 */
export interface PurchaseIds {
  /** Order id per customer. */
  orders: Record<string, string>;
  /** Subscription id per planned subscription, in plan order. */
  subscriptions: string[];
  /** For an extension: the subscription it follows, whose place it holds until it is bought. */
  previous?: string;
}

export function assignIds(planned: readonly PlannedSubscription[]): PurchaseIds {
  const orders: Record<string, string> = {};
  for (const p of planned) orders[p.customer] ??= uuidv7();
  return { orders, subscriptions: planned.map((p) => subscriptionId(p.customer)) };
}

export interface Purchase {
  subscriptions: SubscriptionRecord[];
  orders: Order[];
  currency: string;
  totalMinor: bigint;
  /** `waiting` while a syndicated subscription's vendor has not reported; `failed` if one could not provision. */
  state: PurchaseState;
}

/** Unwraps an object's answer, turning its error back into the AppError it was. */
export function unwrap<T>(outcome: Outcome<T>): T {
  if (!outcome.ok) throw fromErrorWire(outcome.error);
  return outcome.value;
}

/**
 * The plan of a purchase, or a 400 naming every field that makes it impossible. An object of no
 * customer (`null`, priced by the calculator) is priced without one. `products`: the catalog to
 * plan from (the products a purchase accepted earlier was accepted with), else the catalog now.
 */
export async function plan<C extends string | null>(
  env: Env,
  partnerId: string,
  objects: PurchaseObject<C>[],
  now: Date,
  products?: readonly Product[],
) {
  const catalog =
    products ??
    (await catalogKnowing(
      env,
      objects.map((o) => o.resource),
    ));
  const result = planPurchase(objects, catalog, now);
  const customers = [...new Set(objects.flatMap((o) => (o.customer === null ? [] : [o.customer])))];
  const known = await ownCustomers(env, partnerId, customers);
  const strangers = objects.flatMap((o, i) =>
    o.customer === null || known.has(o.customer)
      ? []
      : [{ point: `/objects/${i}/customer`, message: "no such customer" }],
  );
  const errors = [...strangers, ...(result.ok ? [] : result.errors)];
  if (errors.length > 0 || !result.ok) throw badRequest(describeFieldErrors(errors, "objects"), errors);
  return result;
}

export interface BuyOptions {
  /**
   * Links the subscription bought into an extension chain, continuing its deployment: its status,
   * and where and how the customer reaches what the vendor deployed.
   */
  chain?: {
    rootId: string;
    previousId: string;
    deploymentStatus: SubscriptionRecord["deploymentStatus"];
    syndicatedEndpoints: SubscriptionRecord["syndicatedEndpoints"];
    endUserInstructions: SubscriptionRecord["endUserInstructions"];
    /** The term that holds the chain's quota, which the new term shares; null: it holds it anew. */
    heldBy: string | null;
  };
  /** The operation buying; its syndicated subscriptions complete it when their vendors report. */
  operationRef?: string;
  /** What the charge lines call the terms bought; by default `extension` in a chain, else `purchase`. */
  chargeKind?: TermChargeKind;
  /** Bought only once that commission is settled (a renewal's term's purchase): else `CommissionOpen`. */
  unlessOpen?: IssueInput["unlessOpen"];
}

const purchaseReference = (ids: PurchaseIds) => `purchase:${Object.values(ids.orders).join(",")}`;

/** What the recovery sweep needs to settle a purchase whose request died (`recoverPurchase`). */
export interface PurchaseRecovery {
  ids: PurchaseIds;
  /** The operation buying, if it runs as one: then the operation's fate decides. */
  opRef: string | null;
}

/**
 * Buys a plan: one commission holds the quota of every subscription (so the whole batch fits,
 * or nothing is bought), then the orders and the objects are written. The purchase takes effect
 * (commission accepted, orders completed) at once, unless a syndicated subscription waits for its
 * vendor: then `settle` or `abandon` finishes it when the vendor reports.
 */
export async function buy(
  env: Env,
  partnerId: string,
  planned: readonly PlannedSubscription[],
  ids: PurchaseIds,
  now: Date,
  options: BuyOptions = {},
): Promise<Purchase> {
  const orderOf = new Map(Object.entries(ids.orders));
  const { chain, operationRef } = options;
  const records = planned.map((p, i) => {
    const record = plannedRecord(
      p,
      {
        id: ids.subscriptions[i] ?? subscriptionId(p.customer),
        orderId: orderOf.get(p.customer) ?? "",
        partnerId,
        ...(chain ? { rootId: chain.rootId, previousId: chain.previousId } : {}),
        ...(operationRef ? { operationRef } : {}),
      },
      now,
    );
    return chain
      ? {
          ...record,
          deploymentStatus: chain.deploymentStatus,
          syndicatedEndpoints: chain.syndicatedEndpoints,
          endUserInstructions: chain.endUserInstructions,
          ...(chain.heldBy ? { heldBy: chain.heldBy } : {}),
        }
      : record;
  });
  const reference = purchaseReference(ids);
  const recovery: PurchaseRecovery = { ids, opRef: operationRef ?? null };
  let serial: number;
  try {
    serial = await issueCommission(
      env,
      { serviceId: null, partnerId },
      {
        name: reference,
        force: false,
        autoAccept: false,
        reference,
        recovery: recovery as unknown as IssueInput["recovery"],
        unlessOpen: options.unlessOpen,
        provisions: records.map((r) => ({
          holder: r.customerId,
          source: "system",
          resource: r.quotaResource,
          // A term of a chain that holds its quota holds nothing more (README, "Quota held once per chain").
          quantity: chain?.heldBy ? 0 : r.amount,
        })),
      },
      now,
    );
  } catch (error) {
    // Retried after the recovery sweep undid it: it stays undone (finished if the undo was not).
    if (error instanceof CommissionRejected) {
      await abandon(env, ids, now);
      throw new PurchaseGivenUp(ids);
    }
    throw quotaError(error, records);
  }
  fault("purchase.issued");

  const ordersOf = (bought: readonly SubscriptionRecord[]) =>
    purchaseOrders(ids.orders, bought, options.chargeKind ?? (chain ? "extension" : "purchase"), now);
  // A vendor reads the order when it is told of the subscription: then the orders are written
  // first. A purchase that takes effect at once writes them once, in their final state, before
  // its commission is accepted: up to the accept, `abandon` can still undo all of it. An operation's
  // writes them pending, completed at the accept (`settle`): until then its operation decides it.
  const waits = records.some((r) => r.deploymentStatus === "PENDING");
  const atAccept = operationRef !== undefined;
  if (waits) await insertOrders(env, ordersOf(records));
  const commissionHome = homeOf(
    records.map((r) => r.customerId),
    null,
  );
  // A purchase of one subscription that takes effect at once has its order, completed, written
  // in its projection's D1 batch: one D1 write where there were two. The step order is the same:
  // the order lands after the subscription is stored and before the commission is accepted.
  const [only] = records.length === 1 && !waits ? ordersOf(records) : [];
  const answers = await Promise.all(
    records.map((r) =>
      subscriptionObject(env, r.id).create(
        { ...r, serial, commissionHome },
        only && { ...only, state: atAccept ? "pending" : "completed" },
      ),
    ),
  );
  const created = answers.map((a) => a.record);
  // The recovery sweep undid it while this request was on its way (it took the request for dead):
  // created failed, it stays undone, and no order is written.
  if (created.some((r) => r.endReason === "failed")) {
    await abandon(env, ids, now);
    throw new PurchaseGivenUp(ids);
  }
  const ordered = answers.every((a) => a.ordered);
  const state = purchaseState(created);
  // The orders of what was created: a term that waited for its vendor starts when deployed, so its
  // line says the term and price it finally has.
  const orders = ordersOf(created);
  fault("purchase.created");
  if (waits) {
    if (state === "settled") {
      await setPendingOrderLines(env, orders);
      await settle(env, ids);
    }
  } else {
    const final = state === "settled" && !atAccept ? ("completed" as const) : ("pending" as const);
    if (!ordered) {
      await insertOrders(
        env,
        orders.map((o) => ({ ...o, state: final })),
      );
    }
    fault("purchase.ordered");
    // Its orders were written completed (an operation's pending): accepting is all that is left.
    if (state === "settled") await (atAccept ? settle(env, ids) : acceptPurchase(env, ids));
  }
  fault("purchase.accepted");
  return {
    subscriptions: created,
    orders: orders.map((o) => ({
      ...o,
      state: state === "settled" ? ("completed" as const) : ("pending" as const),
    })),
    currency: created[0]?.currency ?? "EUR",
    totalMinor: created.reduce((sum, r) => sum + BigInt(r.priceMinor), 0n),
    state,
  };
}

export type PurchaseState = "settled" | "waiting" | "failed";

/** A purchase takes effect once every vendor has provisioned; one failure undoes all of it. */
function purchaseState(records: readonly SubscriptionRecord[]): PurchaseState {
  if (records.some((r) => r.deploymentStatus === "FAILED")) return "failed";
  return records.some((r) => r.deploymentStatus === "PENDING") ? "waiting" : "settled";
}

/**
 * The purchase takes effect: its commission is accepted and its orders completed, writing their
 * charge lines (in the same batch; lines already written stay as they are). If the recovery
 * sweep gave it up first (its request looked dead), it is undone instead and the answer is 409:
 * either way the purchase, its quota and its orders agree.
 */
export async function settle(env: Env, ids: PurchaseIds): Promise<void> {
  await acceptPurchase(env, ids, true);
  fault("purchase.settled");
  await setOrdersState(env, Object.values(ids.orders), "completed");
  await followedUp(env, Object.keys(ids.orders), purchaseReference(ids));
}

/**
 * Accepts the purchase's commission (`followUp`: with work after it, see `settleReferenced`); one
 * the recovery sweep gave up first is undone: 409.
 */
async function acceptPurchase(env: Env, ids: PurchaseIds, followUp = false): Promise<void> {
  const holders = Object.keys(ids.orders);
  const ended = await settleReferenced(env, holders, purchaseReference(ids), "accept", followUp);
  if (ended !== "accepted") {
    await abandon(env, ids, new Date());
    throw new PurchaseGivenUp(ids);
  }
}

/** 409: the purchase was undone (the recovery sweep gave it up) before it could complete. */
export class PurchaseGivenUp extends AppError {
  constructor(ids: PurchaseIds) {
    super("conflict", "this purchase was given up before it could complete; nothing was bought", {
      data: { orders: Object.values(ids.orders), subscriptions: ids.subscriptions },
    });
  }
}

/**
 * Undoes a purchase that cannot go on: a vendor could not provision, or the work was given up
 * half-way. Its commission decides: still open, it is rejected (which gives the quota back), its
 * subscriptions end as failed and its orders fail, reversing the charge lines they wrote (orders
 * written completed before the accept have lines). Already accepted, the purchase took effect:
 * it is finished instead (its orders completed) and nothing is undone. Says which it was.
 */
export async function abandon(env: Env, ids: PurchaseIds, now: Date): Promise<"undone" | "took effect"> {
  const holders = Object.keys(ids.orders);
  const reference = purchaseReference(ids);
  // Until the undo is done, the commission stays open to the sweep (and to a cancel): rejected
  // alone, its subscriptions would stay live holding nothing, and a cancel would release again.
  const ended = await settleReferenced(env, holders, reference, "reject", true);
  if (ended === "accepted") {
    await setOrdersState(env, Object.values(ids.orders), "completed");
    await followedUp(env, holders, reference);
    return "took effect";
  }
  fault("purchase.rejected");
  const failed = await Promise.all(ids.subscriptions.map((id) => subscriptionObject(env, id).fail(now)));
  // An extension that failed gives its place in the chain back, so the chain can be extended again.
  await Promise.all(
    failed.flatMap((outcome, i) => {
      // An extension whose object was never created still holds its place: `ids` name it.
      const previous = outcome.ok ? outcome.value.previousId : (ids.previous ?? null);
      const id = ids.subscriptions[i];
      return previous && id ? [subscriptionObject(env, previous).releaseNext(id, true)] : [];
    }),
  );
  // An order not written yet is written failed: a request still on its way (the sweep took it for
  // dead) that writes it later leaves it failed, with no charge line. A customer none of whose
  // subscriptions exist gets it without lines.
  const records = failed.flatMap((outcome) => (outcome.ok ? [outcome.value] : []));
  const orders = purchaseOrders(ids.orders, records, "purchase", now);
  // Their customers are read a chunk a statement: a purchase may have 500, and a query each, with
  // the orders' writes, would pass one invocation's D1 queries, the undo failing on every run.
  const written = new Set(orders.map((o) => o.id));
  const unwritten = Object.keys(ids.orders).filter(
    (customerId) => !written.has(ids.orders[customerId] as string),
  );
  for (const customer of await findCustomers(env, unwritten)) {
    orders.push(emptyOrder(ids.orders[customer.id] as string, customer, now));
  }
  await insertOrders(
    env,
    orders.map((o) => ({ ...o, state: "failed" as const })),
  );
  await setOrdersState(env, Object.values(ids.orders), "failed");
  await followedUp(env, holders, reference);
  return "undone";
}
