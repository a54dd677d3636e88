import { docsContentSecurityPolicy, docsHtml } from "../docs";
import { openApiDocument } from "../openapi";
import { defineRoute, type RouteSpec } from "../route";
import { chargeRoutes } from "./charges";
import { customerRoutes } from "./customers";
import { operationRoutes } from "./operations";
import { operatorRoutes } from "./operator";
import { orderRoutes } from "./orders";
import { productRoutes } from "./products";
import { quotaRoutes } from "./quota";
import { subscriptionRoutes } from "./subscriptions";
import { syndicationRoutes } from "./syndication";
import { vendorRoutes } from "./vendor";

const tag = "Meta";

const metaRoutes: RouteSpec[] = [
  defineRoute({
    method: "GET",
    path: "/openapi.json",
    summary: "This API's OpenAPI 3.1 document",
    tag,
    auth: null,
    responses: { 200: { description: "The document" } },
    handle: ({ request }) => Response.json(openApiDocument(routes, new URL(request.url).origin)),
  }),
  defineRoute({
    method: "GET",
    path: "/docs",
    summary: "The API reference, as a web page",
    tag,
    auth: null,
    responses: { 200: { description: "HTML" } },
    handle: () =>
      new Response(docsHtml, {
        headers: {
          "content-type": "text/html; charset=utf-8",
          "content-security-policy": docsContentSecurityPolicy,
        },
      }),
  }),
  defineRoute({
    method: "GET",
    path: "/healthz",
    summary: "Liveness probe",
    tag,
    auth: null,
    responses: { 200: { description: "The Worker answers" } },
    handle: () => Response.json({ ok: true }),
  }),
];

/** Every route the Worker serves. */
export const routes: readonly RouteSpec[] = [
  ...metaRoutes,
  ...operatorRoutes,
  ...productRoutes,
  ...customerRoutes,
  ...subscriptionRoutes,
  ...orderRoutes,
  ...chargeRoutes,
  ...operationRoutes,
  ...syndicationRoutes,
  ...vendorRoutes,
  ...quotaRoutes,
];
