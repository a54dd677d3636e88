import { badRequest } from "../domain/errors";
import { logError } from "../domain/log";

/**
 * Reads from the nearest D1 replica (README, "Read replication"). Each request runs its D1 work in
 * one D1 session, opened the first time the request touches `env.DB`: from the bookmark the caller
 * sends in `X-D1-Bookmark`, else `first-unconstrained` for a read (any replica will do) and
 * `first-primary` for a write. The answer carries the latest bookmark the request saw, for the
 * caller's next request to start from: what it wrote, it then reads, from whichever replica.
 */

/** The header a bookmark travels in, both ways: the name Cloudflare's D1 documentation uses. */
export const BOOKMARK_HEADER = "X-D1-Bookmark";

/**
 * A bookmark as D1 makes them (Cloudflare's glossary: `0000007b-0000b26e-00001538-0c3e87bb…`).
 * Anything else is refused here: D1 would fail the request's first query with it, as a 500.
 */
export const BOOKMARK_PATTERN = "^[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{32}$";
const BOOKMARK = new RegExp(BOOKMARK_PATTERN);

/** Bookmarks sort as their database's history does: the greater is the later. */
const later = (a: string | null, b: string | null) => (a === null || (b !== null && b > a) ? b : a);

export interface RequestDatabase {
  /** The request's env: `DB` is its session, opened on first use. */
  env: Env;
  /**
   * For a write that reached a Durable Object and succeeded: a read on the primary, after the
   * objects' own D1 writes, so the bookmark answered covers them too (README, "Read replication",
   * says why this and not a bookmark from each object). Nothing, and no await, for any other request.
   */
  settle(status: number): Promise<void> | undefined;
  /** Sets the bookmark to answer on `response`, if the request has one. */
  stamp(response: Response): void;
}

/** The request's D1 session, from its `X-D1-Bookmark`: 400 if that is not a bookmark. */
export function requestDatabase(request: Request, env: Env): RequestDatabase {
  const given = request.headers.get(BOOKMARK_HEADER);
  if (given !== null && !BOOKMARK.test(given)) {
    const message = "must be a bookmark this API answered in X-D1-Bookmark";
    throw badRequest(`X-D1-Bookmark ${message}`, [{ point: "/headers/x-d1-bookmark", message }]);
  }
  const read = request.method === "GET" || request.method === "HEAD";
  let session: D1DatabaseSession | null = null;
  let reachedObject = false;
  let caughtUp: string | null = null;
  // The request's env inherits every binding from the Worker's: built per request, without a copy.
  const own: Env = Object.create(env, {
    // The session stands in for the binding: the request's code only prepares statements and
    // batches them, all a session does.
    DB: {
      get: () => {
        session ??= env.DB.withSession(given ?? (read ? "first-unconstrained" : "first-primary"));
        return session;
      },
    },
    // The objects write to D1 through their own env, on the primary, outside this session.
    SUBSCRIPTION: { get: () => reached(env.SUBSCRIPTION) },
    QUOTA_LEDGER: { get: () => reached(env.QUOTA_LEDGER) },
  });
  const reached = <T>(namespace: T) => {
    reachedObject = true;
    return namespace;
  };
  return {
    env: own,
    settle(status) {
      if (read || !reachedObject || status >= 400) return undefined;
      // A fresh session: the request's own may send this read to a replica only as new as it is.
      const primary = env.DB.withSession("first-primary");
      return primary
        .prepare("SELECT 1")
        .run()
        .then(
          () => {
            caughtUp = primary.getBookmark();
          },
          // The write is done: the caller still gets the bookmark of what this session saw.
          (error: unknown) => logError("d1.catch_up_failed", error),
        );
    },
    stamp(response) {
      const bookmark = later(later(given, session?.getBookmark() ?? null), caughtUp);
      if (bookmark !== null) response.headers.set(BOOKMARK_HEADER, bookmark);
    },
  };
}
