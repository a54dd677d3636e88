import { badRequest } from "../domain/errors";

/**
 * Cursor pagination for every collection: fetch `limit + 1` rows ordered by a unique key, answer
 * `limit` of them, and hand the last key back as an opaque cursor.
 */

export interface Page<T> {
  objects: T[];
  meta: { limit: number; next_cursor: string | null };
}

export function encodeCursor(key: string): string {
  return btoa(key).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

export function decodeCursor(cursor: string | undefined): string | undefined {
  if (cursor === undefined) return undefined;
  try {
    return atob(cursor.replaceAll("-", "+").replaceAll("_", "/"));
  } catch {
    throw badRequest("cursor is not valid", [
      { point: "/cursor", message: "is not a cursor this API issued" },
    ]);
  }
}

export function toPage<R, T>(
  rows: R[],
  limit: number,
  keyOf: (row: R) => string,
  shape: (row: R) => T,
): Page<T> {
  const more = rows.length > limit;
  const kept = more ? rows.slice(0, limit) : rows;
  const last = kept.at(-1);
  return {
    objects: kept.map(shape),
    meta: { limit, next_cursor: more && last !== undefined ? encodeCursor(keyOf(last)) : null },
  };
}
