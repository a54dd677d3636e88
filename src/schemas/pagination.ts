import * as v from "valibot";

export const Pagination = v.object({
  limit: v.optional(
    v.pipe(
      v.string(),
      v.regex(/^\d+$/, "must be a whole number"),
      v.transform(Number),
      v.minValue(1),
      v.maxValue(500),
    ),
    "50",
  ),
  cursor: v.optional(v.pipe(v.string(), v.maxLength(512))),
});

export const pageMeta = v.object({
  limit: v.number(),
  next_cursor: v.nullable(v.string()),
});
