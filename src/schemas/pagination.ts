import * as v from "valibot";

/** Items one page may hold (`limit`): a page is read, and its chains looked up, in one request. */
export const MAX_PAGE_LIMIT = 500;

export const Pagination = v.object({
  limit: v.optional(
    v.pipe(
      v.string(),
      v.regex(/^\d+$/, "must be a whole number"),
      v.description(`Items per page, 1 to ${MAX_PAGE_LIMIT}.`),
      // What the document states: a query value is text on the wire, this one a whole number.
      v.metadata({ type: "integer", minimum: 1, maximum: MAX_PAGE_LIMIT, pattern: undefined }),
      v.transform(Number),
      v.minValue(1, "must be at least 1"),
      v.maxValue(MAX_PAGE_LIMIT, `at most ${MAX_PAGE_LIMIT}`),
    ),
    "50",
  ),
  cursor: v.optional(v.pipe(v.string(), v.maxLength(512))),
});

export const pageMeta = v.object({
  limit: v.pipe(v.number(), v.integer()),
  next_cursor: v.pipe(
    v.nullable(v.string()),
    v.description("Pass it as `cursor` for the next page; null on the last."),
  ),
});
