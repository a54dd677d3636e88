import { PRIMARY } from "../db/client";
import { badRequest } from "../domain/errors";
import { logError } from "../domain/log";
import type { Family } from "./family";

/**
 * Reads from the nearest D1 replica (README, "Read replication"). Each request runs its D1 work in
 * one D1 session, opened the first time the request touches `env.DB`: a read from the bookmark the
 * caller sends in `X-D1-Bookmark`, else `first-unconstrained` (any replica will do); a write always
 * on the primary, which is at least as new as any bookmark, since what a write reads decides what
 * it writes (a resource's owner, an alias taken, the depletables a report drains), and a replica
 * as new as the caller's bookmark may still miss another caller's write. The answer carries the
 * latest bookmark the request saw, for the caller's next request to start from: what it wrote, it
 * then reads, from whichever replica.
 *
 * The quota API is the exception: what it reads of D1 (the serial blocks and the index of pending
 * commissions) is written by the ledgers, outside any request's session, so it always starts on
 * the primary. The ledgers write nothing else to D1, so a call that reaches one needs no catch-up.
 */

/** The header a bookmark travels in, both ways: the name Cloudflare's D1 documentation uses. */
export const BOOKMARK_HEADER = "X-D1-Bookmark";

/**
 * A bookmark as D1 makes them (Cloudflare's glossary: `0000007b-0000b26e-00001538-0c3e87bb…`).
 * Anything else is the caller's mistake, refused here (400) rather than left to D1 to fail on.
 */
export const BOOKMARK_PATTERN = "^[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{32}$";
const BOOKMARK = new RegExp(BOOKMARK_PATTERN);

/** The `bookmark` an object's answer carries, if any. */
function bookmarkOf(answer: unknown): string | null {
  if (typeof answer !== "object" || answer === null || !("bookmark" in answer)) return null;
  return typeof answer.bookmark === "string" ? answer.bookmark : null;
}

/** Bookmarks sort as their database's history does: the greater is the later. */
const later = (a: string | null, b: string | null) => (a === null || (b !== null && b > a) ? b : a);

export interface RequestDatabase {
  /** The request's env: `DB` is its session, opened on first use. */
  env: Env;
  /**
   * For a write that called a subscription's object and succeeded, unless a write statement of its
   * own followed the last call: a read on the primary, after the objects' own D1 writes, so the
   * bookmark answered covers them too (README, "Read replication", says why this and not a bookmark
   * from each object). Nothing, and no await, for any other request.
   */
  settle(status: number): Promise<void> | undefined;
  /** Sets the bookmark to answer on `response`, if the request has one. */
  stamp(response: Response): void;
}

const SESSION = Symbol("the request's D1 session");
type Carrier = Env & { [SESSION]: RequestSession };

/**
 * What every request's env inherits, built once per Worker env: the Worker's bindings, with `DB`
 * the request's session and the objects' namespaces noting that the request reached one. A request
 * then costs one small object, not a copy of the env nor getters of its own.
 */
const prototypes = new WeakMap<Env, Env>();

function requestPrototype(env: Env): Env {
  let prototype = prototypes.get(env);
  if (!prototype) {
    prototype = Object.create(env, {
      // The session stands in for the binding: the request's code only prepares statements and
      // batches them, all a session does.
      DB: {
        get(this: Carrier) {
          return this[SESSION].open();
        },
      },
      // The subscriptions write their read model to D1 through their own env, on the primary,
      // outside this session.
      SUBSCRIPTION: {
        get(this: Carrier) {
          return this[SESSION].reach(env.SUBSCRIPTION);
        },
      },
    }) as Env;
    prototypes.set(env, prototype);
  }
  return prototype;
}

/** A statement that changes the database: D1 runs it on the primary, whatever the session. */
const WRITE = /^\s*(?:insert|update|delete|replace)\b/i;

/** `target` with some members replaced; the others are its own, called on it. */
function bound<T extends object>(target: T, replaced: Partial<T>): T {
  return new Proxy(target, {
    get: (own, key) => {
      if (key in replaced) return replaced[key as keyof T];
      const member = Reflect.get(own, key);
      return typeof member === "function" ? (...args: unknown[]) => Reflect.apply(member, own, args) : member;
    },
  });
}

class RequestSession implements RequestDatabase {
  readonly env: Env;
  private session: D1DatabaseSession | null = null;
  /** What the request prepared on it: the session, with each write noted. */
  private database: D1DatabaseSession | null = null;
  private caughtUp: string | null = null;
  /** Ticks ordering the events below within the request. */
  private clock = 0;
  /** When the last call to a subscription's object ended; 0: none did. */
  private objectDone = 0;
  private objectCalls = 0;
  /** When the request's last write statement was prepared; 0: none was. */
  private wrote = 0;

  /** The request's reads that must come from the primary (`primaryOf`), in a session of their own. */
  private primarySession: D1DatabaseSession | null = null;
  private primaryEnv: Env | null = null;

  constructor(
    private readonly base: Env,
    /** The bookmark the caller sent, answered back if nothing newer is seen. */
    private readonly given: string | null,
    /** Where the session starts: a bookmark, or `first-primary`/`first-unconstrained`. */
    private readonly start: string,
    private readonly read: boolean,
  ) {
    const env = Object.create(requestPrototype(base)) as Carrier & { [PRIMARY]: () => Env };
    env[SESSION] = this;
    env[PRIMARY] = () => this.primary();
    this.env = env;
  }

  open(): D1DatabaseSession {
    if (this.database) return this.database;
    const session = this.base.DB.withSession(this.start);
    this.session = session;
    this.database = this.read
      ? session
      : bound(session, {
          prepare: (sql: string) => {
            if (WRITE.test(sql)) this.wrote = ++this.clock;
            return session.prepare(sql);
          },
        });
    return this.database;
  }

  /**
   * A write's calls to subscriptions' objects are timed: a write statement of its own that was
   * prepared after the last of them ended ran on the primary after their D1 writes, so the
   * session's bookmark already covers those (a purchase's orders, written after its objects).
   */
  reach(namespace: Env["SUBSCRIPTION"]): Env["SUBSCRIPTION"] {
    if (this.read) return namespace;
    const timed = <T extends object>(stub: T): T =>
      new Proxy(stub, {
        get: (target, key) => {
          const member = Reflect.get(target, key);
          if (typeof member !== "function" || key === "then") return member;
          return (...args: unknown[]) => {
            this.objectCalls += 1;
            return Promise.resolve(Reflect.apply(member, target, args)).then(
              (answer) => {
                this.objectCalls -= 1;
                // An object that answers the bookmark of its D1 write (`create`) proved it.
                const bookmark = bookmarkOf(answer);
                if (bookmark === null) this.objectDone = ++this.clock;
                else this.caughtUp = later(this.caughtUp, bookmark);
                return answer;
              },
              (error: unknown) => {
                this.objectCalls -= 1;
                this.objectDone = ++this.clock;
                throw error;
              },
            );
          };
        },
      });
    return bound(namespace, { get: (id: DurableObjectId) => timed(namespace.get(id)) });
  }

  settle(status: number): Promise<void> | undefined {
    const settled = this.objectCalls === 0;
    // No object call, or a write statement of its own after the last one: nothing to catch up.
    if (this.read || status >= 400 || (settled && (this.objectDone === 0 || this.wrote > this.objectDone)))
      return undefined;
    // A fresh session: the request's own may send this read to a replica only as new as it is.
    const primary = this.base.DB.withSession("first-primary");
    return primary
      .prepare("SELECT 1")
      .run()
      .then(
        () => {
          this.caughtUp = primary.getBookmark();
        },
        // The write is done: the caller still gets the bookmark of what this session saw.
        (error: unknown) => logError("d1.catch_up_failed", error),
      );
  }

  /** The Worker's env with `DB` a session on the primary, whose bookmark the answer counts too. */
  primary(): Env {
    if (!this.primaryEnv) {
      const session = this.base.DB.withSession("first-primary");
      this.primarySession = session;
      this.primaryEnv = Object.create(this.base, { DB: { value: session } }) as Env;
    }
    return this.primaryEnv;
  }

  stamp(response: Response): void {
    const seen = later(this.session?.getBookmark() ?? null, this.primarySession?.getBookmark() ?? null);
    const bookmark = later(later(this.given, seen), this.caughtUp);
    if (bookmark !== null) response.headers.set(BOOKMARK_HEADER, bookmark);
  }
}

/** The request's D1 session, from its `X-D1-Bookmark`: 400 if that is not a bookmark. */
export function requestDatabase(request: Request, env: Env, family: Family): RequestDatabase {
  const given = request.headers.get(BOOKMARK_HEADER);
  if (given !== null && !BOOKMARK.test(given)) {
    const message = "must be a bookmark this API answered in X-D1-Bookmark";
    throw badRequest(`X-D1-Bookmark ${message}`, [{ point: "/headers/x-d1-bookmark", message }]);
  }
  const read = request.method === "GET" || request.method === "HEAD";
  return family === "quota" || !read
    ? new RequestSession(env, given, "first-primary", read)
    : new RequestSession(env, given, given ?? "first-unconstrained", read);
}
