import * as v from "valibot";
import { findOrder, listOrders } from "../../db/orders";
import { IdParams } from "../../schemas/common";
import { Pagination, pageMeta } from "../../schemas/pagination";
import { OrderOut } from "../../schemas/subscriptions";
import { taggedJson } from "../conditional";
import { badRequest, notFound } from "../errors";
import { decodeCursor, toPage } from "../pagination";
import { defineRoute } from "../route";
import { orderView } from "../views";

/** Orders: every purchase (a create for one customer, an extension, a renewal) writes one. */

const tag = "Orders";

export const orderRoutes = [
  defineRoute({
    method: "GET",
    path: "/v1/orders",
    summary: "List the partner's orders",
    tag,
    auth: ["partner"],
    query: Pagination,
    responses: {
      200: { description: "A page", schema: v.object({ objects: v.array(OrderOut), meta: pageMeta }) },
    },
    async handle({ env, principal, query }) {
      if (!principal.partnerId) throw badRequest("only partners have orders");
      const rows = await listOrders(env, principal.partnerId, decodeCursor(query.cursor), query.limit);
      return Response.json(toPage(rows, query.limit, (o) => o.id, orderView));
    },
  }),
  defineRoute({
    method: "GET",
    path: "/v1/orders/{id}",
    summary: "Read an order",
    tag,
    auth: ["partner", "operator"],
    params: IdParams,
    responses: { 200: { description: "The order", schema: OrderOut }, 404: { description: "Not found" } },
    async handle({ env, principal, params }) {
      const order = await findOrder(
        env,
        params.id,
        principal.role === "operator" ? null : principal.partnerId,
      );
      if (!order) throw notFound(`order ${params.id} does not exist`);
      return taggedJson(orderView(order));
    },
  }),
];
