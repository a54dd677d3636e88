import * as v from "valibot";

/** Items one page may hold (`limit`): a page is read, and its chains looked up, in one request. */
export const MAX_PAGE_LIMIT = 500;

/**
 * Items `limit=0` answers at most: read a page at a time while the answer is sent, so memory stays
 * that of one page; the bound keeps one request within D1's queries per invocation (a page costs
 * a list's few statements).
 */
export const MAX_EVERY_ITEMS = 50_000;

/** How far `offset` may skip: the database walks every skipped row, so deep pages take a cursor. */
export const MAX_OFFSET = 10_000;

const wholeNumber = (description: string, minimum: number, maximum: number) =>
  v.pipe(
    v.string(),
    v.regex(/^\d+$/, "must be a whole number"),
    v.description(description),
    // What the document states: a query value is text on the wire, this one a whole number.
    v.metadata({ type: "integer", minimum, maximum, pattern: undefined }),
    v.transform(Number),
  );

/**
 * What a list's query answers for a parameter it does not take: 400 naming it. Ignored, a
 * misspelt filter (`?subscripton=` on the charges) would answer the whole list as if it matched.
 */
export const NOT_A_PARAMETER = "not a parameter of this list";

/** The query of a list that takes no parameter (a whole catalog): any one answers 400. */
export const NoParameters = v.strictObject({}, NOT_A_PARAMETER);

export const Pagination = v.strictObject(
  {
    limit: v.optional(
      v.pipe(
        wholeNumber(
          `Items per page, 1 to ${MAX_PAGE_LIMIT}; 0 asks for every item (CloudSigma's "no pagination"): the answer then holds up to ${MAX_EVERY_ITEMS}, streamed, with \`meta.limit\` 0 and \`meta.next_cursor\` set only when more remain.`,
          0,
          MAX_PAGE_LIMIT,
        ),
        v.maxValue(MAX_PAGE_LIMIT, `at most ${MAX_PAGE_LIMIT}`),
      ),
      "50",
    ),
    cursor: v.optional(
      v.pipe(
        v.string(),
        v.maxLength(512),
        v.description("`meta.next_cursor` of the previous page: the recommended way to page."),
      ),
    ),
    offset: v.optional(
      v.pipe(
        wholeNumber(
          `Items to skip, at most ${MAX_OFFSET}; not with \`cursor\`. Cursors are cheaper and stable while items are added.`,
          0,
          MAX_OFFSET,
        ),
        v.maxValue(MAX_OFFSET, `at most ${MAX_OFFSET}: page further with cursor`),
      ),
    ),
  },
  NOT_A_PARAMETER,
);

export const pageMeta = v.object({
  limit: v.pipe(
    v.number(),
    v.integer(),
    v.description("Items this page may hold; 0 when `limit=0` asked for every item."),
  ),
  next_cursor: v.pipe(
    v.nullable(v.string()),
    v.description("Pass it as `cursor` for the next page; null on the last."),
  ),
  offset: v.optional(
    v.pipe(v.number(), v.integer(), v.description("The items skipped, when the page was asked by `offset`.")),
  ),
  total_count: v.optional(
    v.pipe(
      v.number(),
      v.integer(),
      v.description(
        "How many items the whole list holds, on the lists where one indexed count tells (orders, customers, operations, deliveries, statements).",
      ),
    ),
  ),
});

/**
 * The meta of a list answered whole (the catalogs, a customer's holdings): no page follows, so a
 * client that pages every collection on `meta.next_cursor` stops after it (DESIGN.md: collections
 * answer `{"objects": [...], "meta": {...}}`).
 */
export const wholeListMeta = v.object({
  next_cursor: v.pipe(v.null(), v.description("Always null: the list is answered whole.")),
  total_count: v.pipe(v.number(), v.integer(), v.description("How many items the list holds.")),
});
