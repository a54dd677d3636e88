import type { Customer } from "../db/customers";
import type { Order } from "../db/orders";
import { type TermChargeKind, termChargeKey } from "../domain/charges";
import type { SubscriptionRecord } from "../domain/subscriptions";

/**
 * The orders of a purchase's `records`, `pending`: one per customer `orderIds` gives an order id
 * (customer id → order id), of its records; a customer with none among them has none.
 */
export function purchaseOrders(
  orderIds: Readonly<Record<string, string>>,
  records: readonly SubscriptionRecord[],
  chargeKind: TermChargeKind,
  now: Date,
): Order[] {
  return Object.entries(orderIds).flatMap(([customerId, id]) => {
    const own = records.filter((r) => r.customerId === customerId);
    const first = own[0];
    if (!first) return [];
    const order: Order = {
      id,
      partnerId: first.partnerId,
      customerId,
      // Each line says the charge line it writes once the order completes (src/db/charges.ts).
      lines: own.map((r) => ({
        subscription: r.id,
        product: r.product,
        amount: r.amount,
        priceMinor: Number(r.priceMinor),
        charge: termChargeKey(r.id),
        chargeKind,
        unitPriceMinor: r.unitPriceMinor,
        start: r.startTime,
        end: r.endTime,
      })),
      totalMinor: Number(own.reduce((sum, r) => sum + BigInt(r.priceMinor), 0n)),
      currency: first.currency,
      state: "pending",
      createdAt: now.toISOString(),
    };
    return [order];
  });
}

/**
 * An order of no lines for `customer`, `pending`: the place of an order whose subscriptions were
 * never made: its total 0, in EUR, as `buy` prices a purchase of nothing.
 */
export function emptyOrder(id: string, customer: Pick<Customer, "id" | "partnerId">, now: Date): Order {
  return {
    id,
    partnerId: customer.partnerId,
    customerId: customer.id,
    lines: [],
    totalMinor: 0,
    currency: "EUR",
    state: "pending",
    createdAt: now.toISOString(),
  };
}
