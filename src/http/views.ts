import type { Order } from "../db/orders";
import { termChargeKey } from "../domain/charges";
import { money } from "../domain/subscriptions";

/** Wire shapes shared by the routes that answer them and the operations that store them. */

export const orderView = (o: Order) => ({
  id: o.id,
  buyer: o.customerId,
  lines: o.lines.map((l) => ({
    subscription: l.subscription,
    product: l.product,
    amount: l.amount,
    price: money(BigInt(l.priceMinor), o.currency),
    // The charge line the order line writes once the order completes (GET /v1/charges).
    charge: l.charge ?? termChargeKey(l.subscription),
  })),
  total_price: money(BigInt(o.totalMinor), o.currency),
  currency: o.currency,
  state: o.state,
  created_at: o.createdAt,
});
