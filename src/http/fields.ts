import { toJsonSchema } from "@valibot/to-json-schema";
import type { JsonSchema, Schema } from "./reply";

/**
 * The fields of an object schema as JSON Schema, converted the way the OpenAPI document converts
 * it, so what is derived from them (the dialect's `schema` answers, a PUT's comparison of times)
 * cannot drift from what the document states.
 */

export function fieldsOf(schema: Schema, mode: "input" | "output"): Record<string, JsonSchema> {
  const json = toJsonSchema(schema, { target: "draft-2020-12", typeMode: mode, errorMode: "ignore" });
  return (json.properties ?? {}) as Record<string, JsonSchema>;
}

/** The alternatives a field may take: itself, or each member of its `anyOf` (a nullable field). */
export const alternatives = (field: JsonSchema): JsonSchema[] =>
  Array.isArray(field.anyOf) ? (field.anyOf as JsonSchema[]) : [field];

export const isTime = (field: JsonSchema): boolean =>
  alternatives(field).some((alternative) => alternative.format === "date-time");
