import { ResourceSchemaOut } from "../../schemas/dialect";
import {
  ListQuery,
  PurchaseObject,
  QuoteObject,
  SubscriptionOut,
  UpdateRequest,
} from "../../schemas/subscriptions";
import { describeResource, type ResourceDescription } from "../dialect-schema";
import { defineRoute, type RouteSpec } from "../route";

/**
 * `GET …/schema/` of CloudSigma's dialect, which its clients (pycloudsigma's `get_schema()`) ask
 * for. The methods each URL allows are read from the routes the Worker serves.
 */

const tag = "Subscriptions";

function schemaRoute(
  routes: () => readonly RouteSpec[],
  list: string,
  summary: string,
  resource: Omit<ResourceDescription, "list" | "detail">,
) {
  const methodsOf = (path: string) =>
    routes()
      .filter((r) => r.path === path)
      .map((r) => r.method);
  return defineRoute({
    method: "GET",
    path: `${list}/schema`,
    summary,
    description: `Its fields (type, nullable, readonly, help_text, default), the methods \`${list}/\` and its items allow, its filters and page sizes, as CloudSigma's dialect describes a resource; derived from the schemas this document is made of.`,
    tag,
    auth: ["partner", "operator", "account"],
    responses: { 200: { description: "The description", schema: ResourceSchemaOut } },
    handle: () => ({
      status: 200,
      body: describeResource({ ...resource, list: methodsOf(list), detail: methodsOf(`${list}/{id}`) }),
    }),
  });
}

export const resourceSchemaRoutes = (routes: () => readonly RouteSpec[]) => [
  schemaRoute(routes, "/v1/subscriptions", "Describe a subscription (CloudSigma's schema)", {
    read: SubscriptionOut,
    write: [PurchaseObject, UpdateRequest],
    query: ListQuery,
  }),
  schemaRoute(
    routes,
    "/v1/groupedsubscriptions",
    "Describe a chain of subscriptions as grouped lists it (CloudSigma's schema)",
    { read: SubscriptionOut, write: [], query: ListQuery },
  ),
  schemaRoute(routes, "/v1/subscriptioncalculator", "Describe a quote (CloudSigma's schema)", {
    read: QuoteObject,
    write: [PurchaseObject],
    query: null,
  }),
];
