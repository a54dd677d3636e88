import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { subscriptionId } from "../../src/domain/ids";
import { requestDatabase } from "../../src/http/d1-session";
import {
  type SubscriptionObject,
  subscriptionObject,
  subscriptionShard,
} from "../../src/objects/subscription-object";
import { call, expectOk, type Reply, type Tenant, tenant, tenantWithCatalog } from "../helpers";

/**
 * Reads from the nearest replica (README, "Read replication"): every request runs its D1 work in
 * one D1 session and answers its bookmark in X-D1-Bookmark; a request that sends one reads at
 * least what it names. Locally D1 has no replicas, so these prove the plumbing: the bookmark
 * answered, the one honoured, and that a write's covers what its objects wrote to D1.
 */

const BOOKMARK = /^[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{32}$/;

function bookmarkOf(reply: Reply): string {
  const bookmark = reply.headers.get("x-d1-bookmark");
  if (bookmark === null || !BOOKMARK.test(bookmark)) {
    throw new Error(`expected a bookmark, got ${bookmark} (${reply.status}: ${reply.text.slice(0, 200)})`);
  }
  return bookmark;
}

const from = (bookmark: string) => ({ "x-d1-bookmark": bookmark });

const setup = () => tenantWithCatalog(1);

const buy = (t: Tenant, headers: Record<string, string> = {}, bindings?: Env) =>
  call("POST", "/v1/subscriptions", {
    token: t.partnerKey,
    body: { objects: [{ customer: t.customers[0], resource: "cpu", amount: 2, period: "1 week" }] },
    headers,
    ...(bindings ? { env: bindings } : {}),
  });

/** The primary's bookmark now: after everything written so far. */
async function primaryNow(): Promise<string> {
  const session = env.DB.withSession("first-primary");
  await session.prepare("SELECT 1").run();
  return session.getBookmark() as string;
}

const QUERIES = new Set<PropertyKey>(["batch", "run", "all", "raw", "first"]);

/** `db` (or a statement of it), noting in `marks` the primary's bookmark after each of its queries. */
function noting<T extends object>(db: T, marks: string[]): T {
  return new Proxy(db, {
    get(target, key) {
      const value = Reflect.get(target, key);
      if (typeof value !== "function") return value;
      if (key === "prepare" || key === "bind" || key === "withSession")
        return (...args: unknown[]) => noting(value.apply(target, args), marks);
      if (!QUERIES.has(key)) return value.bind(target);
      return async (...args: unknown[]) => {
        const out = await value.apply(target, args);
        marks.push(await primaryNow());
        return out;
      };
    },
  });
}

describe("X-D1-Bookmark", () => {
  it("is answered on reads and writes, in every family", async () => {
    const t = await tenant({ customers: 1 });
    const created = await call("POST", "/v1/customers", {
      token: t.partnerKey,
      body: { name: "replicated" },
    });
    expect(created.status).toBe(201);
    const write = bookmarkOf(created);
    const list = await call("GET", "/v1/customers", { token: t.partnerKey });
    expect(list.status).toBe(200);
    expect(bookmarkOf(list) >= write).toBe(true);
    const quotas = await call("GET", "/account/v1.0/quotas", { token: t.userTokens[0] });
    expect(quotas.status).toBe(200);
    bookmarkOf(quotas);
  });

  it("is honoured: a list from a purchase's bookmark shows the purchase, and answers no older one", async () => {
    const t = await setup();
    const bought = await buy(t);
    expect(bought.status).toBe(201);
    const id = bought.body.objects[0].id as string;
    const written = bookmarkOf(bought);

    const list = await call("GET", "/v1/subscriptions", { token: t.partnerKey, headers: from(written) });
    expect(list.status).toBe(200);
    expect(list.body.objects.map((s: { id: string }) => s.id)).toEqual([id]);
    expect(bookmarkOf(list) >= written).toBe(true);
  });

  it("passes a bookmark back untouched by a read that never reaches D1; the object shows a newer write", async () => {
    const t = await setup();
    const before = bookmarkOf(await call("GET", "/v1/subscriptions", { token: t.partnerKey }));
    const bought = await buy(t);
    const id = bought.body.objects[0].id as string;
    expect(bookmarkOf(bought) > before).toBe(true);

    // A single subscription is read from its object: an older bookmark does not hide the purchase.
    const read = await call("GET", `/v1/subscriptions/${id}`, { token: t.partnerKey, headers: from(before) });
    expect(read.status).toBe(200);
    expect(read.body).toMatchObject({ id, amount: 2 });
    // No D1 query ran (each one moves the bookmark locally): the caller keeps the one it sent.
    expect(bookmarkOf(read)).toBe(before);
  });

  it("covers what the objects wrote to D1 when a write reached one", async () => {
    const t = await setup();
    const bought = await buy(t);
    const id = bought.body.objects[0].id as string;
    // The object pushes its new version to D1 itself: note the primary's bookmark after each query.
    const pushed: string[] = [];
    await runInDurableObject(subscriptionShard(env, id), (instance: SubscriptionObject) => {
      const own = instance as unknown as { env: Env };
      own.env = { ...own.env, DB: noting(own.env.DB, pushed) };
    });

    const changed = await call("PATCH", `/v1/subscriptions/${id}`, {
      token: t.partnerKey,
      body: { auto_renew: true },
      headers: from(bookmarkOf(bought)),
    });
    expect(changed.status).toBe(200);
    expect(changed.body.auto_renew).toBe(true);
    expect(pushed.length).toBeGreaterThan(0);
    const written = bookmarkOf(changed);
    for (const bookmark of pushed) expect(written >= bookmark).toBe(true);

    const list = await expectOk(
      call("GET", "/v1/subscriptions", { token: t.partnerKey, headers: from(written) }),
    );
    expect(list.objects).toMatchObject([{ id, auto_renew: true }]);
  });

  it("takes a purchase's bookmark from its object, which wrote the purchase to D1: no read after it", async () => {
    const t = await setup();
    // The bookmark of each session the object writes through, after its batch.
    const pushed: string[] = [];
    const batches = (db: D1Database) =>
      new Proxy(db, {
        get(target, key) {
          if (key !== "withSession") return Reflect.get(target, key);
          return (start: string) => {
            const session = target.withSession(start);
            return new Proxy(session, {
              get(own, member) {
                const value = Reflect.get(own, member);
                if (member !== "batch") return typeof value === "function" ? value.bind(own) : value;
                return async (statements: D1PreparedStatement[]) => {
                  const out = await own.batch(statements);
                  pushed.push(own.getBookmark() as string);
                  return out;
                };
              },
            });
          };
        },
      });
    await runInDurableObject(
      subscriptionShard(env, subscriptionId(t.customers[0] as string)),
      (instance: SubscriptionObject) => {
        const own = instance as unknown as { env: Env };
        own.env = { ...own.env, DB: batches(own.env.DB) };
      },
    );
    // What the request's own sessions prepare: a catch-up would be a `SELECT 1` after the object.
    const prepared: string[] = [];
    const DB = new Proxy(env.DB, {
      get(target, key) {
        if (key !== "withSession") return Reflect.get(target, key);
        return (start: string) =>
          new Proxy(target.withSession(start), {
            get(session, member) {
              const value = Reflect.get(session, member);
              if (member !== "prepare") return typeof value === "function" ? value.bind(session) : value;
              return (sql: string) => {
                prepared.push(sql);
                return session.prepare(sql);
              };
            },
          });
      },
    });
    const bought = await buy(t, {}, { ...env, DB } as Env);
    expect(bought.status).toBe(201);
    expect(prepared).not.toContain("SELECT 1");
    expect(pushed.length).toBeGreaterThan(0);
    const answered = bookmarkOf(bought);
    for (const bookmark of pushed) expect(answered >= bookmark).toBe(true);
    const id = bought.body.objects[0].id;
    const list = await expectOk(
      call("GET", "/v1/subscriptions", { token: t.partnerKey, headers: from(answered) }),
    );
    expect(list.objects.map((o: { id: string }) => o.id)).toContain(id);
  });

  it("refuses what is not a bookmark: 400 in the family's format, even where D1 is never read", async () => {
    const t = await setup();
    const bought = await buy(t);
    const id = bought.body.objects[0].id as string;
    for (const bad of [
      "first-primary",
      "not a bookmark",
      "0000000g-00000001-00000000-00000000000000000000000000000000",
    ]) {
      const read = await call("GET", `/v1/subscriptions/${id}`, { token: t.partnerKey, headers: from(bad) });
      expect(read.status).toBe(400);
      expect(read.headers.get("content-type")).toContain("application/problem+json");
      expect(read.body.errors).toEqual([{ point: "/headers/x-d1-bookmark", message: expect.any(String) }]);
      expect(read.headers.get("x-d1-bookmark")).toBeNull();
    }
    const write = await buy(t, from("garbage"));
    expect(write.status).toBe(400);
    expect(write.body.detail).toContain("X-D1-Bookmark");
    const list = await expectOk(call("GET", "/v1/subscriptions", { token: t.partnerKey }));
    expect(list.objects).toHaveLength(1);

    // A path that names nothing is not found, whatever the bookmark: 404 (and 405) come first.
    const nowhere = await call("GET", "/v1/no-such-thing", { token: t.partnerKey, headers: from("garbage") });
    expect(nowhere.status).toBe(404);
    const wrongMethod = await call("PUT", "/v1/subscriptions", {
      token: t.partnerKey,
      headers: from("garbage"),
    });
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.get("allow")).toContain("GET");

    const quota = await call("GET", "/account/v1.0/quotas", {
      token: t.userTokens[0],
      headers: from("garbage"),
    });
    expect(quota.status).toBe(400);
    expect(quota.body.badRequest).toMatchObject({
      code: 400,
      message: expect.stringContaining("X-D1-Bookmark"),
    });
  });
});

describe("the request's D1 session", () => {
  /** The Worker's env, its D1 binding noting what each session is opened with. */
  function watched() {
    const opened: string[] = [];
    const DB = new Proxy(env.DB, {
      get(target, key) {
        if (key !== "withSession") return Reflect.get(target, key);
        return (start: string) => {
          opened.push(start);
          return target.withSession(start);
        };
      },
    });
    return { env: { ...env, DB } as Env, opened };
  }

  const request = (method: string, headers: Record<string, string> = {}) =>
    new Request("http://stratus.test/v1/customers", { method, headers });

  it("is opened only when the request touches D1, once, and answers nothing it did not see", async () => {
    const w = watched();
    const untouched = requestDatabase(request("GET"), w.env, "partner");
    const response = new Response(null);
    untouched.stamp(response);
    expect(w.opened).toEqual([]);
    expect(response.headers.get("x-d1-bookmark")).toBeNull();

    const touched = requestDatabase(request("GET"), w.env, "partner");
    await touched.env.DB.prepare("SELECT 1").run();
    await touched.env.DB.prepare("SELECT 2").run();
    expect(w.opened).toEqual(["first-unconstrained"]);
  });

  it("starts a read anywhere or from the bookmark sent, a write always on the primary", async () => {
    const w = watched();
    const bookmark = await primaryNow();
    for (const [method, headers, expected] of [
      ["GET", {}, "first-unconstrained"],
      ["HEAD", {}, "first-unconstrained"],
      ["POST", {}, "first-primary"],
      ["DELETE", {}, "first-primary"],
      ["GET", from(bookmark), bookmark],
      // What a write reads decides what it writes: a replica as new as the bookmark may still miss
      // another caller's write (write-checks-replica.test.ts). The bookmark is answered all the same.
      ["POST", from(bookmark), "first-primary"],
    ] as const) {
      w.opened.length = 0;
      const d1 = requestDatabase(request(method, headers), w.env, "partner");
      await d1.env.DB.prepare("SELECT 1").run();
      expect(w.opened).toEqual([expected]);
      const response = new Response(null);
      d1.stamp(response);
      expect(response.headers.get("x-d1-bookmark")! >= bookmark).toBe(true);
    }
  });

  it("reads the primary after a write only when an object call ended after its last write statement", async () => {
    const w = watched();
    const write = () => requestDatabase(request("POST"), w.env, "partner");
    expect(write().settle(201)).toBeUndefined();
    const objectCall = (d1: ReturnType<typeof write>) =>
      subscriptionObject(d1.env, crypto.randomUUID()).get();

    const viaObject = write();
    void viaObject.env.SUBSCRIPTION;
    expect(viaObject.settle(201)).toBeUndefined();
    await objectCall(viaObject);
    expect(viaObject.settle(409)).toBeUndefined();
    expect(w.opened).toEqual([]);
    await viaObject.settle(201);
    expect(w.opened).toEqual(["first-primary"]);

    // A write statement of its own after the object's call ran on the primary after the object's
    // D1 writes: the session's bookmark covers them (a purchase's orders).
    w.opened.length = 0;
    const thenWrote = write();
    await objectCall(thenWrote);
    await thenWrote.env.DB.prepare("DELETE FROM customers WHERE id = ?").bind("none").run();
    expect(thenWrote.settle(201)).toBeUndefined();
    expect(w.opened).toEqual(["first-primary"]);
    // A read statement after it proves nothing: it may have gone to a replica.
    const thenRead = write();
    await objectCall(thenRead);
    await thenRead.env.DB.prepare("SELECT 1").run();
    await thenRead.settle(201);
    expect(w.opened.length).toBe(3);
    const read = requestDatabase(request("GET"), w.env, "partner");
    void read.env.SUBSCRIPTION;
    expect(read.settle(200)).toBeUndefined();
  });

  it("runs the quota API on the primary, from any bookmark, with no catch-up after a ledger", async () => {
    const w = watched();
    const bookmark = await primaryNow();
    for (const [method, headers] of [
      ["GET", {}],
      ["GET", from(bookmark)],
      ["POST", from(bookmark)],
    ] as const) {
      w.opened.length = 0;
      const d1 = requestDatabase(request(method, headers), w.env, "quota");
      void d1.env.QUOTA_LEDGER;
      expect(d1.settle(201)).toBeUndefined();
      await d1.env.DB.prepare("SELECT 1").run();
      expect(w.opened).toEqual(["first-primary"]);
    }
  });
});
