import * as v from "valibot";

/** What CloudSigma's dialect answers for `GET …/schema/`: a resource's description. */

const Field = v.object({
  type: v.pipe(v.string(), v.description("datetime, integer, float, boolean, string, list or dict.")),
  nullable: v.boolean(),
  readonly: v.pipe(v.boolean(), v.description("Whether a write leaves it as it is.")),
  help_text: v.string(),
  default: v.pipe(
    v.unknown(),
    v.description("What a write that leaves it out sets; `No default provided.` when none."),
  ),
});

export const ResourceSchemaOut = v.object({
  allowed_list_http_methods: v.array(v.string()),
  allowed_detail_http_methods: v.array(v.string()),
  default_format: v.literal("application/json"),
  default_limit: v.pipe(v.nullable(v.number()), v.description("Null for what is not a paged list.")),
  max_limit: v.pipe(v.nullable(v.number()), v.description("Null for what is not a paged list.")),
  filtering: v.pipe(
    v.record(v.string(), v.array(v.string())),
    v.description("The list's query parameters that narrow it, with the lookups each takes."),
  ),
  fields: v.record(v.string(), Field),
});
