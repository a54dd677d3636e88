import * as v from "valibot";
import { badRequest } from "../domain/errors";
import type { JsonStream } from "../domain/json";
import { logError } from "../domain/log";
import { Uuid } from "../schemas/common";
import { MAX_EVERY_ITEMS, MAX_PAGE_LIMIT, type wholeListMeta } from "../schemas/pagination";

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
  /** `limit=0`: every page in turn (`pagedAnswer`), each of `limit` (the largest page). */
  every: boolean;
}

export function encodeCursor(key: string): string {
  return btoa(key).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/** The keys cursors carry (ids, timestamps, serials) are printable ASCII; anything else is not one. */
const CURSOR_KEY = /^[\x20-\x7e]+$/;

/** What a list's rows are keyed by (an id, an opRef, a charge's position): a cursor must carry one. */
export type CursorKey = (key: string) => boolean;

/** Rows keyed by their id: any UUID the API accepts as one. */
export const byId: CursorKey = (key) => v.is(Uuid, key);

function decodeCursor(cursor: string | undefined, isKey: CursorKey): string | undefined {
  if (cursor === undefined) return undefined;
  let key: string | undefined;
  try {
    key = atob(cursor.replaceAll("-", "+").replaceAll("_", "/"));
  } catch {
    key = undefined;
  }
  // A cursor that decodes to no key this API could have issued would page from nowhere: an
  // empty page that reads as the end of the list. It is refused instead: it must decode to
  // printable text that is a key of this very list (base64url of "zzz" is no subscription id).
  if (key === undefined || !CURSOR_KEY.test(key) || encodeCursor(key) !== cursor || !isKey(key)) {
    throw badRequest("cursor is not valid", [
      { point: "/cursor", message: "is not a cursor this API issued" },
    ]);
  }
  return key;
}

/**
 * The window a list query asks for: its cursor decoded to the key rows resume after, which must
 * be a key of the list's rows (`isKey`).
 */
export function pageWindow(
  query: {
    limit: number;
    cursor?: string | undefined;
    offset?: number | undefined;
  },
  isKey: CursorKey,
): PageWindow {
  if (query.cursor !== undefined && query.offset !== undefined) {
    throw badRequest("page by cursor or by offset, not both", [
      { point: "/offset", message: "cannot be used with cursor" },
    ]);
  }
  const every = query.limit === 0;
  return {
    after: decodeCursor(query.cursor, isKey),
    offset: query.offset ?? 0,
    limit: every ? MAX_PAGE_LIMIT : query.limit,
    byOffset: query.offset !== undefined,
    every,
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

/** A list's answer: its page (`objects`, `meta`), and any fields of its own before them. */
type PagedBody = { objects: unknown[]; meta: Page<unknown>["meta"] };

const encoder = new TextEncoder();

/**
 * A list's answer for `window`: the page `pageAt` reads, or for `limit=0` every page in turn,
 * streamed as one body (CloudSigma's clients ask for the whole list and never read `meta`, so a
 * page cut short would read as rows that do not exist). The first page is read before answering,
 * so a bad request still answers its 4xx; each next one as the client reads, so memory holds one
 * page. `meta` comes last: `limit` 0, `next_cursor` set only past `MAX_EVERY_ITEMS`, `offset` and
 * `total_count` as the first page said them. A page that fails later cuts the body short (the
 * status is sent): the client's JSON does not parse, which a missing row would.
 */
export async function pagedAnswer<B extends PagedBody>(
  window: PageWindow,
  pageAt: (window: PageWindow) => Promise<B>,
): Promise<{ body: B } | { stream: JsonStream<B> }> {
  const first = await pageAt(window);
  if (!window.every) return { body: first };
  const { objects: _, meta: firstMeta, ...head } = first;
  const fields = JSON.stringify(head);
  let text = `${fields.slice(0, -1)}${fields === "{}" ? "" : ","}"objects":[`;
  let page: B | null = first;
  let items = 0;
  const stream = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          page ??= await pageAt(window);
          for (const item of page.objects) text += `${items++ === 0 ? "" : ","}${JSON.stringify(item)}`;
          const next = page.meta.next_cursor;
          if (next === null || items >= MAX_EVERY_ITEMS) {
            const meta = {
              ...page.meta,
              limit: 0,
              next_cursor: next,
              offset: firstMeta.offset,
              total_count: firstMeta.total_count,
            };
            controller.enqueue(encoder.encode(`${text}],"meta":${JSON.stringify(meta)}}`));
            controller.close();
            return;
          }
          controller.enqueue(encoder.encode(text));
          text = "";
          page = null;
          // A cursor this list just issued: its key is one of the list's.
          window = { ...window, after: decodeCursor(next, () => true), offset: 0, byOffset: false };
        } catch (error) {
          controller.error(new ListCutShort(items, error));
        }
      },
      // Nothing is read ahead: a page is read when the client has taken the one before.
    },
    { highWaterMark: 0 },
  );
  return { stream: stream as JsonStream<B> };
}

/** A `limit=0` list cut short by a page that failed (`cause`), after `items` were sent. */
export class ListCutShort extends Error {
  constructor(
    readonly items: number,
    cause: unknown,
  ) {
    super(`the list was cut short after ${items} items`, { cause });
    this.name = "ListCutShort";
  }
}

/**
 * `stream`, whose failure is logged as `list.page_failed` with `fields` (the request's id and
 * route, which its request line, written when the status was sent, carries too) and the failure
 * that cut it short, with its own stack.
 */
export function reportingFailure(
  stream: ReadableStream<Uint8Array>,
  fields: Record<string, unknown>,
): ReadableStream<Uint8Array> {
  const reader = stream.getReader();
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          const read = await reader.read();
          if (read.done) controller.close();
          else controller.enqueue(read.value);
        } catch (error) {
          const cut = error instanceof ListCutShort ? error : null;
          logError("list.page_failed", cut ? cut.cause : error, { ...fields, items: cut?.items ?? null });
          controller.error(error);
        }
      },
      cancel: (reason) => reader.cancel(reason),
    },
    { highWaterMark: 0 },
  );
}

/** A list answered whole (no page follows), with its meta. */
export function wholeList<T>(objects: T[]): { objects: T[]; meta: v.InferOutput<typeof wholeListMeta> } {
  return { objects, meta: { next_cursor: null, total_count: objects.length } };
}
