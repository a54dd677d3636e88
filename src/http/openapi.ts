import { type ConversionConfig, toJsonSchema, toJsonSchemaDefs } from "@valibot/to-json-schema";
import * as v from "valibot";
import { familyOf } from "./app";
import { REQUEST_COMPONENTS, RESPONSE_COMPONENTS } from "./components";
import { BOOKMARK_HEADER, BOOKMARK_PATTERN } from "./d1-session";
import { MAX_KEY_LENGTH } from "./idempotency";
import { ERROR_RESPONSES, EVERY_ANSWER, errorResponses, HEADERS, isKeyed } from "./openapi-errors";
import type { JsonSchema, ResponseSpec, Schema } from "./reply";
import type { RouteSpec } from "./route";
import { TAGS } from "./tags";

/**
 * The OpenAPI 3.1 document, generated from the same route declarations that parse requests and
 * type their replies. Named schemas (components.ts) are referred to by `$ref`; answers are
 * described closed (`additionalProperties: false`), as the Worker renders exactly what it
 * declares; requests open, as valibot ignores members it does not know.
 */

type Mode = "input" | "output";

const config = (mode: Mode, definitions: Record<string, Schema>): ConversionConfig => ({
  target: "draft-2020-12",
  typeMode: mode,
  errorMode: "ignore",
  definitions,
  overrideRef: ({ referenceId }) => `#/components/schemas/${referenceId}`,
  overrideSchema: ({ valibotSchema, jsonSchema }) => {
    if (mode === "output" && valibotSchema.type === "object")
      return { ...jsonSchema, additionalProperties: false };
    // A closed tuple as linters read it: `items` names what may follow the prefix, `maxItems` that nothing does.
    if (valibotSchema.type === "strict_tuple" && jsonSchema.prefixItems) {
      return {
        ...jsonSchema,
        items: { anyOf: jsonSchema.prefixItems },
        maxItems: jsonSchema.prefixItems.length,
      };
    }
    return undefined;
  },
});

const DEFINITIONS: Record<Mode, Record<string, Schema>> = {
  input: REQUEST_COMPONENTS,
  output: RESPONSE_COMPONENTS,
};

function schemaOf(schema: Schema, mode: Mode): JsonSchema {
  const { $schema: _, $defs: __, ...rest } = toJsonSchema(schema, config(mode, DEFINITIONS[mode]));
  return rest as JsonSchema;
}

/** Both sets of named schemas; one named in both must convert alike (e.g. `Provision`). */
function componentSchemas(): Record<string, JsonSchema> {
  const out = toJsonSchemaDefs(RESPONSE_COMPONENTS, config("output", RESPONSE_COMPONENTS)) as Record<
    string,
    JsonSchema
  >;
  const requests = toJsonSchemaDefs(REQUEST_COMPONENTS, config("input", REQUEST_COMPONENTS));
  for (const [name, json] of Object.entries(requests)) {
    if (name in out && name !== "Provision") throw new Error(`component ${name} is named twice`);
    out[name] ??= json as JsonSchema;
  }
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => a.localeCompare(b)));
}

const SECURITY_BY_FAMILY = {
  partner: [{ apiKey: [] }, { bearer: [] }, { basic: [] }],
  quota: [{ authToken: [] }],
  vendor: [{ cmwAuthToken: [] }],
} as const;

/** Request headers, by the route features they go with. */
const HEADER_PARAMETERS = {
  idempotencyKey: {
    name: "Idempotency-Key",
    in: "header",
    required: false,
    description: `1 to ${MAX_KEY_LENGTH} printable ASCII characters, bare or as a quoted string. A retry with the same key and the same request answers what the first did (\`Idempotent-Replayed: true\`); with another request, 422. Kept 24 hours, and shared by every credential of what the sender stands for (its partner, customer, service or vendor), so a retry sent with a rotated key is the same request.`,
    schema: { type: "string", minLength: 1, maxLength: MAX_KEY_LENGTH },
  },
  prefer: {
    name: "Prefer",
    in: "header",
    required: false,
    description:
      "`respond-async`: answer 202 and an operation to poll (`Location`) instead of waiting for the work.",
    schema: { type: "string" },
    example: "respond-async",
  },
  ifMatch: {
    name: "If-Match",
    in: "header",
    required: false,
    description: "The `ETag` of the representation the change is based on: a stale one answers 412.",
    schema: { type: "string" },
  },
} as const;

/** Request headers every operation takes, named once in `components.parameters`. */
const SHARED_PARAMETERS = {
  D1Bookmark: {
    name: BOOKMARK_HEADER,
    in: "header",
    required: false,
    description:
      "A bookmark an earlier answer carried in `X-D1-Bookmark`: this request reads D1 at least as new as that answer (read-your-writes from the nearest replica). Without it a read may be served by any replica. Not a bookmark: 400.",
    schema: { type: "string", pattern: BOOKMARK_PATTERN },
  },
};

function parameters(route: RouteSpec, keyed: boolean): JsonSchema[] {
  const out: JsonSchema[] = [{ $ref: "#/components/parameters/D1Bookmark" }];
  const add = (schema: Schema | undefined, where: "path" | "query") => {
    if (!schema) return;
    const json = schemaOf(schema, "input");
    const props = (json.properties ?? {}) as Record<string, JsonSchema>;
    const required = new Set((json.required ?? []) as string[]);
    for (const [name, prop] of Object.entries(props)) {
      const { description, ...rest } = prop;
      // A query value is text on the wire; a documented integer's default is one too in valibot.
      const typed =
        rest.type === "integer" && typeof rest.default === "string"
          ? { ...rest, default: Number(rest.default) }
          : rest;
      out.push({
        name,
        in: where,
        required: where === "path" || required.has(name),
        ...(description ? { description } : {}),
        schema: typed,
      });
    }
  };
  add(route.params, "path");
  add(route.query, "query");
  if (keyed) out.push(HEADER_PARAMETERS.idempotencyKey);
  if (route.async) out.push(HEADER_PARAMETERS.prefer);
  if (route.ifMatch) out.push(HEADER_PARAMETERS.ifMatch);
  return out;
}

function successResponse(spec: ResponseSpec, keyed: boolean): JsonSchema {
  const headers: Record<string, JsonSchema> = { ...EVERY_ANSWER };
  for (const [name, h] of Object.entries(spec.headers ?? {})) {
    headers[name] = {
      description: h.description,
      required: h.required === true,
      schema: h.schema ?? { type: "string" },
    };
  }
  if (keyed) {
    headers["Idempotent-Replayed"] = {
      description: "`true` on an answer replayed for a retry under the same Idempotency-Key.",
      required: false,
      schema: { type: "string", enum: ["true"] },
    };
  }
  const out: JsonSchema = { description: spec.description, headers };
  const example = spec.example === undefined ? {} : { example: spec.example };
  if (spec.schema)
    out.content = { "application/json": { schema: schemaOf(spec.schema, "output"), ...example } };
  else if (spec.media) out.content = { [spec.media]: { schema: { type: "string" }, ...example } };
  return out;
}

const operationId = (route: RouteSpec) =>
  `${route.method.toLowerCase()}${route.path.replace(/[^A-Za-z0-9]+(.)?/g, (_, c: string | undefined) => (c ? c.toUpperCase() : ""))}`;

function operation(route: RouteSpec): JsonSchema {
  const family = familyOf(route.path);
  const keyed = isKeyed(route, family);
  const responses: Record<string, JsonSchema> = {};
  for (const [code, spec] of Object.entries(route.responses)) responses[code] = successResponse(spec, keyed);
  // A read that answers an ETag answers If-None-Match (app.ts) with 304 when it still matches.
  if (route.method === "GET" && route.responses[200]?.headers?.ETag) {
    responses["304"] = {
      description: "Not modified: `If-None-Match` lists the current ETag; no body.",
      headers: {
        ...EVERY_ANSWER,
        ETag: { description: "The current ETag.", required: true, schema: { type: "string" } },
      },
    };
  }
  Object.assign(responses, errorResponses(route, family));
  const op: JsonSchema = {
    tags: [route.tag],
    summary: route.summary,
    description: route.description,
    operationId: operationId(route),
    parameters: parameters(route, keyed),
    responses,
    security: route.auth ? SECURITY_BY_FAMILY[family] : [],
    ...(route.auth ? { "x-roles": route.auth } : {}),
  };
  if (route.body) {
    op.requestBody = {
      // An empty body is read as `{}` (route.ts): a body whose members are all optional may be left out.
      required: !v.safeParse(route.body, {}).success,
      content: {
        "application/json": {
          schema: schemaOf(route.body, "input"),
          ...(route.bodyExample === undefined ? {} : { example: route.bodyExample }),
        },
      },
    };
  }
  return op;
}

export interface OpenApiDocument {
  openapi: string;
  info: { title: string; version: string; [member: string]: unknown };
  paths: Record<string, Record<string, JsonSchema>>;
  [member: string]: unknown;
}

export function openApiDocument(routes: readonly RouteSpec[], serverUrl: string): OpenApiDocument {
  const paths: Record<string, Record<string, JsonSchema>> = {};
  for (const route of routes) {
    const item = paths[route.path] ?? {};
    item[route.method.toLowerCase()] = operation(route);
    paths[route.path] = item;
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "stratus",
      version: "0.1.0",
      description:
        "Subscriptions, quotas and syndication for cloud resellers. Three families share the Worker: the partner and operator API under `/v1` (errors are RFC 9457 `application/problem+json`), the quota API under `/account/v1.0` in Astakos's dialect (errors are cloudFault bodies) and the vendor API under `/api` in ClouDesire's (problem+json). Every path also answers with a trailing slash.",
      contact: { name: "stratus" },
    },
    servers: [{ url: serverUrl, description: "This Worker" }],
    tags: Object.entries(TAGS).map(([name, description]) => ({ name, description })),
    paths,
    components: {
      schemas: componentSchemas(),
      responses: ERROR_RESPONSES,
      parameters: SHARED_PARAMETERS,
      headers: HEADERS,
      securitySchemes: {
        apiKey: {
          type: "apiKey",
          in: "header",
          name: "X-Api-Key",
          description:
            "Partner or operator API key (a vendor's token on /v1/webhooks and product endpoints).",
        },
        bearer: { type: "http", scheme: "bearer", description: "The same API key as a bearer token" },
        basic: {
          type: "http",
          scheme: "basic",
          description:
            "HTTP Basic, as CloudSigma's clients send it: the password is the API key, the username is not checked (the key's id, or anything).",
        },
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
