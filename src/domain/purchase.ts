/**
 * Planning a purchase, free of I/O: from the requested objects and the catalog to the exact
 * subscriptions that would be bought and their prices. The calculator stops here; creation
 * buys the plan.
 */
import { findProduct, isDepletable, isPerObject, isRunnable, type Product } from "./catalog";
import { type CreatedWith, type DurationError, longestDeployed, resolveDuration } from "./durations";
import { MAX_PRICE_MINOR } from "./money";
import { cloudRefusal } from "./refusals";
import { type SubscriptionRecord, termPriceMinor } from "./subscriptions";

/** Subscriptions one purchase (or price calculation) may ask for and create: the spec's limit. */
export const MAX_OBJECTS = 500;

/** Why `priceMinor` cannot be charged, or null. */
export function priceRefusal(priceMinor: bigint): string | null {
  return priceMinor > MAX_PRICE_MINOR
    ? `costs ${priceMinor} minor units, more than the ${MAX_PRICE_MINOR} one purchase may cost`
    : null;
}

/** `C`: the customer's id; the calculator prices objects of no customer (`null`) too. */
export interface PurchaseObject<C extends string | null = string> {
  customer: C;
  resource: string;
  amount: number;
  start_time?: Date;
  end_time?: Date;
  period?: string;
  auto_renew?: boolean;
}

export interface PlannedSubscription<C extends string | null = string> {
  /** Index of the requested object it comes from. */
  index: number;
  customer: C;
  product: Product;
  amount: number;
  start: Date;
  end: Date | null;
  period: string | null;
  createdWith: CreatedWith | null;
  autoRenew: boolean;
  priceMinor: bigint;
}

export interface PlanError {
  point: string;
  message: string;
}

export type Plan<C extends string | null = string> =
  | { ok: true; subscriptions: PlannedSubscription<C>[]; currency: string; totalMinor: bigint }
  | { ok: false; errors: PlanError[] };

export function durationErrors(error: DurationError, at: string): PlanError[] {
  return error.fields.map((field) => ({ point: `${at}/${field}`, message: error.message }));
}

export function planPurchase<C extends string | null>(
  objects: readonly PurchaseObject<C>[],
  catalog: readonly Product[],
  now: Date,
): Plan<C> {
  const errors: PlanError[] = [];
  const subscriptions: PlannedSubscription<C>[] = [];
  let currency: string | null = null;
  /** What the purchase may cost once its vendors deploy it, each term at its longest. */
  let mostTotalMinor = 0n;

  objects.forEach((object, index) => {
    const at = `/objects/${index}`;
    const product = findProduct(catalog, object.resource);
    if (!product) {
      errors.push({ point: `${at}/resource`, message: "is no product of the catalog" });
      return;
    }
    currency ??= product.currency;
    if (product.currency !== currency) {
      errors.push({
        point: `${at}/resource`,
        message: `priced in ${product.currency}, the others in ${currency}`,
      });
      return;
    }
    const base = { index, customer: object.customer, product, autoRenew: object.auto_renew ?? false };
    if (isDepletable(product) || isRunnable(product)) {
      // Time parameters do not apply: depletables last until used up, clouds until cancelled.
      const priceMinor = termPriceMinor(product, object.amount, now, null);
      const refusal =
        priceRefusal(priceMinor) ??
        (isRunnable(product) ? cloudRefusal(object.amount, BigInt(product.unitPriceMinor)) : null);
      if (refusal) {
        errors.push({ point: `${at}/amount`, message: refusal });
        return;
      }
      mostTotalMinor += priceMinor;
      subscriptions.push({
        ...base,
        amount: object.amount,
        start: now,
        end: null,
        period: null,
        createdWith: null,
        autoRenew: false,
        priceMinor,
      });
      return;
    }
    const duration = resolveDuration(
      { start_time: object.start_time, end_time: object.end_time, period: object.period },
      now,
    );
    if (!duration.ok) {
      errors.push(...durationErrors(duration.error, at));
      return;
    }
    const { start, end, period, createdWith } = duration.value;
    const copies = isPerObject(product) ? object.amount : 1;
    // Count before expanding: an amount of a billion IPs must not build a billion plans first.
    if (subscriptions.length + copies > MAX_OBJECTS) {
      errors.push({ point: `${at}/amount`, message: `would create more than ${MAX_OBJECTS} subscriptions` });
      return;
    }
    const amount = isPerObject(product) ? 1 : object.amount;
    const priceMinor = termPriceMinor(product, amount, start, end);
    // A syndicated term starts when its vendor deploys it, and a period is read again from then.
    const mostMinor =
      product.delivery === "syndicated"
        ? termPriceMinor(product, amount, start, longestDeployed(duration.value).end)
        : priceMinor;
    const refusal = priceRefusal(mostMinor);
    if (refusal) {
      const late = mostMinor === priceMinor ? "" : "deployed late, it ";
      errors.push({ point: `${at}/amount`, message: `${late}${refusal}` });
      return;
    }
    mostTotalMinor += mostMinor * BigInt(copies);
    for (let i = 0; i < copies; i++) {
      subscriptions.push({ ...base, amount, start, end, period, createdWith, priceMinor });
    }
  });

  if (errors.length > 0) return { ok: false, errors };
  if (subscriptions.length > MAX_OBJECTS) {
    return {
      ok: false,
      errors: [
        {
          point: "/objects",
          message: `would create ${subscriptions.length} subscriptions; at most ${MAX_OBJECTS}`,
        },
      ],
    };
  }
  const totalMinor = subscriptions.reduce((sum, s) => sum + s.priceMinor, 0n);
  const refusal = priceRefusal(mostTotalMinor);
  if (refusal) {
    const late = mostTotalMinor === totalMinor ? "" : "deployed late, ";
    return { ok: false, errors: [{ point: "/objects", message: `${late}the purchase ${refusal}` }] };
  }
  return { ok: true, subscriptions, currency: currency ?? "EUR", totalMinor };
}

/**
 * The record of planned subscription `p` as a purchase creates it (`ids`: those chosen for it, and
 * the chain it continues, if any), before its commission, object or vendor have done anything.
 */
export function plannedRecord(
  p: PlannedSubscription,
  ids: {
    id: string;
    orderId: string;
    partnerId: string;
    rootId?: string;
    previousId?: string;
    operationRef?: string;
  },
  now: Date,
): SubscriptionRecord {
  return {
    id: ids.id,
    partnerId: ids.partnerId,
    customerId: p.customer,
    orderId: ids.orderId,
    product: p.product.id,
    kind: p.product.kind,
    quotaResource: p.product.quotaResource,
    unitPriceMinor: p.product.unitPriceMinor,
    currency: p.product.currency,
    amount: p.amount,
    startTime: p.start.toISOString(),
    endTime: p.end?.toISOString() ?? null,
    period: p.period,
    createdWith: p.createdWith,
    autoRenew: p.autoRenew,
    priceMinor: p.priceMinor.toString(),
    remaining: p.product.kind === "depletable" ? p.amount : null,
    endedAt: null,
    endReason: null,
    rootId: ids.rootId ?? ids.id,
    previousId: ids.previousId ?? null,
    nextId: null,
    runs: [],
    serial: null,
    delivery: p.product.delivery,
    vendorId: p.product.vendorId,
    deploymentStatus: p.product.delivery === "syndicated" ? "PENDING" : "DEPLOYED",
    syndicatedEndpoints: [],
    endUserInstructions: null,
    operationRef: ids.operationRef ?? null,
    sequence: 0,
    renewal: null,
    renewalError: null,
    version: 0,
    createdAt: now.toISOString(),
  };
}
