import { describe, expect, it } from "vitest";
import {
  encodeCursor,
  ListCutShort,
  type PageWindow,
  pagedAnswer,
  pageWindow,
  toPage,
} from "../../src/http/pagination";
import { MAX_EVERY_ITEMS, MAX_PAGE_LIMIT } from "../../src/schemas/pagination";

/** A list of `size` items keyed "000000", "000001", …, paged as the routes page theirs. */
function listOf(size: number, failOnPage?: number) {
  const keys = Array.from({ length: size }, (_, i) => String(i).padStart(6, "0"));
  let pages = 0;
  const pageAt = async (window: PageWindow) => {
    pages += 1;
    if (pages === failOnPage) throw new Error("D1 went away");
    const from = window.after === undefined ? window.offset : keys.indexOf(window.after) + 1;
    const rows = keys.slice(from, from + window.limit + 1);
    return {
      head: "first",
      ...toPage(
        rows,
        window,
        (k) => k,
        (k) => ({ id: k }),
        size,
      ),
    };
  };
  return { keys, pageAt, pages: () => pages };
}

/** The key `listOf`'s rows have: the only one its cursors may carry. */
const isKey = (key: string) => /^\d{6}$/.test(key);

const read = async (answer: Awaited<ReturnType<typeof pagedAnswer>>) =>
  "stream" in answer ? JSON.parse(await new Response(answer.stream).text()) : answer.body;

describe("pagedAnswer", () => {
  it("answers one page as a body when a limit is asked", async () => {
    const { pageAt } = listOf(10);
    const answer = await pagedAnswer(pageWindow({ limit: 3 }, isKey), pageAt);
    expect(answer).toHaveProperty("body");
    expect(await read(answer)).toEqual({
      head: "first",
      objects: [{ id: "000000" }, { id: "000001" }, { id: "000002" }],
      meta: { limit: 3, next_cursor: encodeCursor("000002"), total_count: 10 },
    });
  });

  it("streams every page for limit=0, reading each only as the body is read", async () => {
    const { keys, pageAt, pages } = listOf(MAX_PAGE_LIMIT * 2 + 7);
    const answer = await pagedAnswer(pageWindow({ limit: 0, offset: 3 }, isKey), pageAt);
    expect(pages()).toBe(1);
    const body = await read(answer);
    expect(pages()).toBe(3);
    expect(body.head).toBe("first");
    expect(body.objects.map((o: { id: string }) => o.id)).toEqual(keys.slice(3));
    expect(body.meta).toEqual({ limit: 0, offset: 3, next_cursor: null, total_count: keys.length });
  });

  it(`stops at ${MAX_EVERY_ITEMS} items with a cursor to the rest`, async () => {
    const { keys, pageAt } = listOf(MAX_EVERY_ITEMS + 3);
    const body = await read(await pagedAnswer(pageWindow({ limit: 0 }, isKey), pageAt));
    expect(body.objects).toHaveLength(MAX_EVERY_ITEMS);
    expect(body.objects.at(-1).id).toBe(keys[MAX_EVERY_ITEMS - 1]);
    expect(body.meta.next_cursor).toBe(encodeCursor(keys[MAX_EVERY_ITEMS - 1] as string));
  });

  it("cuts the body short when a later page fails, so it never parses as a shorter list", async () => {
    const { pageAt } = listOf(MAX_PAGE_LIMIT * 3, 2);
    const answer = await pagedAnswer(pageWindow({ limit: 0 }, isKey), pageAt);
    const cut = await read(answer).catch((error: unknown) => error);
    expect(cut).toBeInstanceOf(ListCutShort);
    expect((cut as ListCutShort).items).toBe(MAX_PAGE_LIMIT);
    expect(((cut as ListCutShort).cause as Error).message).toBe("D1 went away");
  });

  it("answers the first page's error before anything is sent", async () => {
    const { pageAt } = listOf(10, 1);
    await expect(pagedAnswer(pageWindow({ limit: 0 }, isKey), pageAt)).rejects.toThrow("D1 went away");
  });
});
