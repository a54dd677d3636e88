import { scopeOf } from "../../app/reads";
import { findOrder, listOrders } from "../../db/orders";
import { notFound } from "../../domain/errors";
import { IdParams } from "../../schemas/common";
import { OrderOut, OrderPageOut, OrdersQuery } from "../../schemas/subscriptions";
import { tagged } from "../conditional";
import * as examples from "../examples";
import { byId, type PageWindow, pagedAnswer, pageWindow, toPage } from "../pagination";
import { ETAG } from "../reply";
import { defineRoute } from "../route";
import { orderView } from "../views";

/** Orders: every purchase (a create for one customer, an extension, a renewal) writes one. */

const tag = "Orders";

export const orderRoutes = [
  defineRoute({
    method: "GET",
    path: "/v1/orders",
    summary: "List orders",
    description:
      "Oldest first: one per customer a purchase bought for, and one per extension or renewal. A partner's own; the operator's, every partner's (`?customer=` narrows either).",
    tag,
    auth: ["partner", "operator", "account"],
    query: OrdersQuery,
    responses: {
      200: {
        description: "A page",
        schema: OrderPageOut,
        example: { objects: [examples.order], meta: { limit: 50, next_cursor: null } },
      },
    },
    async handle({ env, principal, query }) {
      const filter = { scope: scopeOf(principal), customer: query.customer };
      const page = async (window: PageWindow) => {
        const { rows, total } = await listOrders(env, { ...filter, ...window });
        return toPage(rows, window, (o) => o.id, orderView, total);
      };
      return { status: 200, ...(await pagedAnswer(pageWindow(query, byId), page)) };
    },
  }),
  defineRoute({
    method: "GET",
    path: "/v1/orders/{id}",
    summary: "Read an order",
    description: "Its lines, each naming the charge line it writes once the order completes.",
    tag,
    auth: ["partner", "operator", "account"],
    params: IdParams,
    responses: {
      200: { description: "The order", schema: OrderOut, headers: ETAG, example: examples.order },
    },
    async handle({ env, principal, params }) {
      const order = await findOrder(env, params.id, scopeOf(principal));
      if (!order) throw notFound(`order ${params.id} does not exist`);
      return tagged(orderView(order));
    },
  }),
];
