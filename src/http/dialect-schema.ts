import { Pagination } from "../schemas/pagination";
import { alternatives, fieldsOf, isTime } from "./fields";
import type { JsonSchema, Schema } from "./reply";

/**
 * A resource described the way CloudSigma's dialect answers `GET …/schema/` (its fields with type,
 * nullable, readonly, help_text and default; the methods its list and detail URLs allow; its
 * filters and page sizes), derived from the valibot schemas the OpenAPI document is made of.
 */

/** What the dialect answers for a field without a default. */
const NO_DEFAULT = "No default provided.";

export interface ResourceDescription {
  /** The object a read answers. */
  read: Schema;
  /** The objects the writes take (a create's, an update's): their fields are the writable ones. */
  write: readonly Schema[];
  list: readonly string[];
  detail: readonly string[];
  /** The list query, if it is a paged collection: its fields besides paging are the filters. */
  query: Schema | null;
}

function typeOf(field: JsonSchema): string {
  if (isTime(field)) return "datetime";
  const type = alternatives(field)
    .map((alternative) => String(alternative.type ?? "string"))
    .find((t) => t !== "null");
  switch (type) {
    case "integer":
    case "boolean":
    case "string":
      return type;
    case "number":
      return "float";
    case "array":
      return "list";
    case "object":
      return "dict";
    default:
      return "string";
  }
}

const METHOD_ORDER = ["GET", "POST", "PUT", "PATCH", "DELETE"];

const methods = (served: readonly string[]) =>
  METHOD_ORDER.filter((m) => served.includes(m)).map((m) => m.toLowerCase());

const PAGING_FIELDS: ReadonlySet<string> = new Set(Object.keys(Pagination.entries));

export function describeResource(d: ResourceDescription) {
  // The first write that takes a field describes it: a create's default is the one a client sees.
  const written: Record<string, JsonSchema> = {};
  for (const write of d.write) {
    for (const [name, field] of Object.entries(fieldsOf(write, "input"))) written[name] ??= field;
  }
  const fields = Object.fromEntries(
    Object.entries(fieldsOf(d.read, "output")).map(([name, field]) => {
      const input = written[name];
      return [
        name,
        {
          type: typeOf(field),
          nullable: alternatives(field).some((alternative) => alternative.type === "null"),
          readonly: input === undefined,
          help_text: String(field.description ?? input?.description ?? ""),
          default: input?.default ?? NO_DEFAULT,
        },
      ];
    }),
  );
  const query = d.query ? fieldsOf(d.query, "input") : {};
  const filtering = Object.fromEntries(
    Object.keys(query)
      .filter((name) => !PAGING_FIELDS.has(name))
      .map((name) => [name, ["exact"]]),
  );
  return {
    allowed_list_http_methods: methods(d.list),
    allowed_detail_http_methods: methods(d.detail),
    default_format: "application/json" as const,
    // A query's default is text, as the wire carries it.
    default_limit: query.limit?.default === undefined ? null : Number(query.limit.default),
    max_limit: (query.limit?.maximum as number | undefined) ?? null,
    filtering,
    fields,
  };
}
