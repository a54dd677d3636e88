import { toJsonSchema } from "@valibot/to-json-schema";
import type * as v from "valibot";
import { familyOf } from "./app";
import type { RouteSpec } from "./route";

/** The OpenAPI 3.1 document, generated from the same route declarations that parse requests. */

type JsonSchema = Record<string, unknown>;

const schemaOf = (schema: v.GenericSchema, typeMode: "input" | "output"): JsonSchema => {
  const { $schema: _, ...rest } = toJsonSchema(schema, {
    target: "draft-2020-12",
    typeMode,
    errorMode: "ignore",
  }) as JsonSchema;
  return rest;
};

const SECURITY_BY_FAMILY = {
  partner: [{ apiKey: [] }, { bearer: [] }],
  quota: [{ authToken: [] }],
  vendor: [{ cmwAuthToken: [] }],
} as const;

function parameters(route: RouteSpec): JsonSchema[] {
  const out: JsonSchema[] = [];
  const add = (schema: v.GenericSchema | undefined, where: "path" | "query") => {
    if (!schema) return;
    const json = schemaOf(schema, "input");
    const props = (json.properties ?? {}) as Record<string, JsonSchema>;
    const required = new Set((json.required ?? []) as string[]);
    for (const [name, prop] of Object.entries(props)) {
      out.push({ name, in: where, required: where === "path" || required.has(name), schema: prop });
    }
  };
  add(route.params, "path");
  add(route.query, "query");
  return out;
}

/** Every authenticated route may answer it (src/http/rate-limit.ts). */
const TOO_MANY_REQUESTS: JsonSchema = {
  description:
    "Rate limited: too many requests with this credential, or too many failed authentications " +
    "from this address, in the current window",
  headers: {
    "Retry-After": { description: "Seconds to wait", schema: { type: "integer", minimum: 1 } },
    "RateLimit-Policy": {
      description: 'The policy broken (draft-ietf-httpapi-ratelimit-headers), e.g. `"standard";q=600;w=60`',
      schema: { type: "string" },
    },
    RateLimit: {
      description: 'What is left of it, e.g. `"standard";r=0;t=42`',
      schema: { type: "string" },
    },
  },
};

export function openApiDocument(routes: readonly RouteSpec[], serverUrl: string): JsonSchema {
  const paths: Record<string, Record<string, JsonSchema>> = {};
  for (const route of routes) {
    const family = familyOf(route.path);
    const responses: Record<string, JsonSchema> = {};
    for (const [code, spec] of Object.entries(route.responses)) {
      responses[code] = spec.schema
        ? {
            description: spec.description,
            content: { "application/json": { schema: schemaOf(spec.schema, "output") } },
          }
        : { description: spec.description };
    }
    if (route.auth) {
      responses["401"] ??= { description: "Missing or invalid credentials" };
      responses["429"] ??= TOO_MANY_REQUESTS;
    }
    const operation: JsonSchema = {
      tags: [route.tag],
      summary: route.summary,
      ...(route.description ? { description: route.description } : {}),
      operationId: `${route.method.toLowerCase()}${route.path.replace(/[^A-Za-z0-9]+(.)?/g, (_, c: string | undefined) => (c ? c.toUpperCase() : ""))}`,
      parameters: parameters(route),
      responses,
      security: route.auth ? SECURITY_BY_FAMILY[family] : [],
      ...(route.auth ? { "x-roles": route.auth } : {}),
    };
    if (route.body) {
      operation.requestBody = {
        required: true,
        content: { "application/json": { schema: schemaOf(route.body, "input") } },
      };
    }
    const item = paths[route.path] ?? {};
    item[route.method.toLowerCase()] = operation;
    paths[route.path] = item;
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "stratus",
      version: "0.1.0",
      description:
        "Subscriptions, quotas and syndication for cloud resellers. Errors under /v1 are RFC 9457 problem+json; under /account/v1.0 they are cloudFault bodies.",
    },
    servers: [{ url: serverUrl }],
    paths,
    components: {
      securitySchemes: {
        apiKey: {
          type: "apiKey",
          in: "header",
          name: "X-Api-Key",
          description: "Partner or operator API key",
        },
        bearer: { type: "http", scheme: "bearer", description: "The same API key as a bearer token" },
        authToken: {
          type: "apiKey",
          in: "header",
          name: "X-Auth-Token",
          description: "Service or user token",
        },
        cmwAuthToken: { type: "apiKey", in: "header", name: "CMW-Auth-Token", description: "Vendor token" },
      },
    },
  };
}
