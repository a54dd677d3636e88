// The bare baseline Worker of `npm run bench`: each route does only the storage primitive one of
// stratus's hot paths needs, through the same bindings (a SQLite Durable Object over JS RPC, the
// same D1 database and `subscriptions` table), so the ratio shows what stratus adds on top.
import { DurableObject } from "cloudflare:workers";

/** One SQLite-backed object per name: one row read or one row written per call. */
export class BareObject extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(
      "CREATE TABLE IF NOT EXISTS record (id INTEGER PRIMARY KEY CHECK (id = 1), body TEXT NOT NULL, version INTEGER NOT NULL)",
    );
  }

  read() {
    return this.sql.exec("SELECT body FROM record WHERE id = 1").toArray()[0]?.body ?? null;
  }

  write(body) {
    this.sql.exec(
      "INSERT INTO record (id, body, version) VALUES (1, ?, 1) ON CONFLICT (id) DO UPDATE SET body = excluded.body, version = version + 1",
      body,
    );
    return true;
  }
}

const json = (body, status = 200) =>
  new Response(body, { status, headers: { "content-type": "application/json" } });

/** A UUIDv7-shaped id (time first), so inserts append to the indexes as stratus's own ids do. */
function timeOrderedId() {
  const time = Date.now().toString(16).padStart(12, "0");
  const rest = [...crypto.getRandomValues(new Uint8Array(10))].map((b) => b.toString(16).padStart(2, "0"));
  const r = rest.join("");
  return `${time.slice(0, 8)}-${time.slice(8)}-7${r.slice(1, 4)}-8${r.slice(5, 8)}-${r.slice(8, 20)}`;
}

const stub = (env, name) => env.BARE.get(env.BARE.idFromName(name));

const PROJECTION_INSERT = `INSERT INTO subscriptions (id, partner_id, customer_id, product, kind, amount, start_time,
  end_time, auto_renew, ended_at, root_id, previous_id, next_id, order_id, body, version)
  VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, NULL, ?1, NULL, NULL, ?10, ?11, 1)`;

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const [, kind, name] = url.pathname.split("/");
    // GET /do/{name}: one Durable Object read (what GET /v1/subscriptions/{id}/ needs).
    if (kind === "do" && request.method === "GET") {
      const body = await stub(env, name).read();
      return body === null ? json('{"error":"missing"}', 404) : json(body);
    }
    // POST /do/{name}: one Durable Object write (what a commission on one ledger needs).
    if (kind === "do" && request.method === "POST") {
      await stub(env, name).write(await request.text());
      return json('{"ok":true}', 201);
    }
    // GET /d1/list?partner=…: an indexed select of 50 rows of the subscriptions read model.
    if (kind === "d1" && request.method === "GET") {
      const { results } = await env.DB.prepare(
        "SELECT * FROM subscriptions WHERE partner_id = ? ORDER BY id LIMIT 50",
      )
        .bind(url.searchParams.get("partner"))
        .all();
      return json(JSON.stringify({ objects: results }));
    }
    // POST /do-d1/{name}: one Durable Object write plus one D1 insert (what creating one needs).
    if (kind === "do-d1" && request.method === "POST") {
      const body = await request.text();
      await stub(env, name).write(body);
      const id = timeOrderedId();
      await env.DB.prepare(PROJECTION_INSERT)
        .bind(id, "baseline", name, "cpu", "timed", 1, new Date().toISOString(), null, 0, id, body)
        .run();
      return json('{"ok":true}', 201);
    }
    return json('{"error":"no route"}', 404);
  },
};
