import { badRequest } from "../domain/errors";

/**
 * Pagination for every collection: fetch `limit + 1` rows ordered by a unique key, after a cursor
 * or past an offset, answer `limit` of them, and hand the last key back as an opaque cursor.
 */

export interface Page<T> {
  objects: T[];
  meta: { limit: number; next_cursor: string | null; offset?: number; total_count?: number };
}

/** Where a page starts: after a cursor's key, or past `offset` rows (0 when not asked by offset). */
export interface PageWindow {
  after: string | undefined;
  offset: number;
  limit: number;
  byOffset: boolean;
}

export function encodeCursor(key: string): string {
  return btoa(key).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/** The keys cursors carry (ids, timestamps, serials) are printable ASCII; anything else is not one. */
const CURSOR_KEY = /^[\x20-\x7e]+$/;

function decodeCursor(cursor: string | undefined): string | undefined {
  if (cursor === undefined) return undefined;
  let key: string | undefined;
  try {
    key = atob(cursor.replaceAll("-", "+").replaceAll("_", "/"));
  } catch {
    key = undefined;
  }
  // A cursor that decodes to no key this API could have issued would page from nowhere: an
  // empty page that reads as the end of the list. It is refused instead.
  if (key === undefined || !CURSOR_KEY.test(key) || encodeCursor(key) !== cursor) {
    throw badRequest("cursor is not valid", [
      { point: "/cursor", message: "is not a cursor this API issued" },
    ]);
  }
  return key;
}

/** The window a list query asks for: its cursor decoded to the key rows resume after. */
export function pageWindow(query: {
  limit: number;
  cursor?: string | undefined;
  offset?: number | undefined;
}): PageWindow {
  if (query.cursor !== undefined && query.offset !== undefined) {
    throw badRequest("page by cursor or by offset, not both", [
      { point: "/offset", message: "cannot be used with cursor" },
    ]);
  }
  return {
    after: decodeCursor(query.cursor),
    offset: query.offset ?? 0,
    limit: query.limit,
    byOffset: query.offset !== undefined,
  };
}

/** `total`: how many rows the whole list has, where one indexed count tells. */
export function toPage<R, T>(
  rows: R[],
  window: PageWindow,
  keyOf: (row: R) => string,
  shape: (row: R) => T,
  total?: number,
): Page<T> {
  const more = rows.length > window.limit;
  const kept = more ? rows.slice(0, window.limit) : rows;
  const last = kept.at(-1);
  return {
    objects: kept.map(shape),
    meta: {
      limit: window.limit,
      next_cursor: more && last !== undefined ? encodeCursor(keyOf(last)) : null,
      ...(window.byOffset ? { offset: window.offset } : {}),
      ...(total !== undefined ? { total_count: total } : {}),
    },
  };
}
