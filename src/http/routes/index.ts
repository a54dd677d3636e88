import { HealthOut, OpenApiOut } from "../../schemas/meta";
import { docsContentSecurityPolicy, docsHtml } from "../docs";
import { openApiDocument } from "../openapi";
import { defineRoute, type RouteSpec } from "../route";
import { chargeRoutes } from "./charges";
import { consumptionRoutes } from "./consumption";
import { customerRoutes } from "./customers";
import { identityRoutes } from "./identity";
import { operationRoutes } from "./operations";
import { operatorRoutes } from "./operator";
import { orderRoutes } from "./orders";
import { productRoutes } from "./products";
import { projectRoutes } from "./projects";
import { quotaRoutes } from "./quota";
import { resourceSchemaRoutes } from "./resource-schemas";
import { subscriptionUpdateRoutes } from "./subscription-updates";
import { subscriptionRoutes } from "./subscriptions";
import { syndicationRoutes } from "./syndication";
import { vendorRoutes } from "./vendor";

const tag = "Meta";

const metaRoutes: RouteSpec[] = [
  defineRoute({
    method: "GET",
    path: "/openapi.json",
    summary: "This API's OpenAPI 3.1 document",
    description:
      "Generated from the route declarations that parse requests and type replies; its server is the request's origin.",
    tag,
    auth: null,
    responses: {
      200: {
        description: "The document",
        schema: OpenApiOut,
        example: { openapi: "3.1.0", info: { title: "stratus", version: "0.1.0" }, paths: {} },
      },
    },
    handle: ({ request }) => ({ status: 200, body: openApiDocument(routes, new URL(request.url).origin) }),
  }),
  defineRoute({
    method: "GET",
    path: "/docs",
    summary: "The API reference, as a web page",
    description: "A self-contained page rendered from the document.",
    tag,
    auth: null,
    responses: {
      200: {
        description: "The reference: Scalar's renderer, served from this origin",
        media: "text/html",
        headers: {
          "Content-Security-Policy": {
            description: "Only this origin: the page loads nothing from anywhere else.",
            required: true,
          },
        },
        example: '<!doctype html><html lang="en"><head><title>stratus API reference</title></head>…</html>',
      },
    },
    handle: () => ({
      status: 200,
      body: docsHtml,
      headers: { "Content-Security-Policy": docsContentSecurityPolicy },
    }),
  }),
  defineRoute({
    method: "GET",
    path: "/healthz",
    summary: "Liveness probe",
    description: "Answers as soon as the Worker runs; touches no storage.",
    tag,
    auth: null,
    responses: { 200: { description: "The Worker answers", schema: HealthOut, example: { ok: true } } },
    handle: () => ({ status: 200, body: { ok: true as const } }),
  }),
];

/** Every route the Worker serves. */
export const routes: readonly RouteSpec[] = [
  ...metaRoutes,
  ...operatorRoutes,
  ...productRoutes,
  ...customerRoutes,
  ...projectRoutes,
  // Before `/v1/subscriptions/{id}`, which `schema` would match.
  ...resourceSchemaRoutes(() => routes),
  ...subscriptionRoutes,
  ...subscriptionUpdateRoutes,
  ...consumptionRoutes,
  ...orderRoutes,
  ...chargeRoutes,
  ...operationRoutes,
  ...syndicationRoutes,
  ...vendorRoutes,
  ...quotaRoutes,
  ...identityRoutes,
];
