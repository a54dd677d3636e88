import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { subscriptionShard } from "../src/objects/subscription-object";
import { call, expectOk, type Tenant } from "./helpers";

/**
 * Subscriptions as stratus kept them before shards: an object of its own, named by the
 * subscription's id (src/objects/legacy-subscription.ts).
 */

export const legacyObject = (id: string) => env.SUBSCRIPTION.get(env.SUBSCRIPTION.idFromName(id));

/**
 * Moves subscription `id` out of its shard into an object of its own, laid out as before shards:
 * its record, the usage lines it had not pushed yet and an open quota step (`as` replaces the
 * record and the step), with the old object's alarm at `alarmAt`.
 */
export async function toObjectOfItsOwn(
  id: string,
  options: { alarmAt?: number; as?: { body: string; step: string } } = {},
): Promise<void> {
  const shard = subscriptionShard(env, id);
  const kept = await runInDurableObject(shard, (_instance, state) => {
    const sql = state.storage.sql;
    const record = sql
      .exec<{ body: string; projected: number }>("SELECT body, projected FROM records WHERE id = ?", id)
      .one();
    const lines = sql
      .exec<{ key: string; start: number; body: string }>(
        "SELECT key, start, body FROM usage_lines WHERE subscription = ?",
        id,
      )
      .toArray();
    const step =
      sql.exec<{ body: string }>("SELECT body FROM quota_steps WHERE subscription = ?", id).toArray()[0]
        ?.body ?? null;
    for (const table of ["usage_lines", "wakes", "quota_steps"]) {
      sql.exec(`DELETE FROM ${table} WHERE subscription = ?`, id);
    }
    sql.exec("DELETE FROM records WHERE id = ?", id);
    return {
      body: options.as?.body ?? record.body,
      projected: record.projected,
      lines,
      step: options.as?.step ?? step,
    };
  });
  await evictDurableObject(shard);
  await runInDurableObject(legacyObject(id), async (_instance, state) => {
    const sql = state.storage.sql;
    sql.exec(`CREATE TABLE record (
        id INTEGER PRIMARY KEY CHECK (id = 1), body TEXT NOT NULL, projected INTEGER NOT NULL DEFAULT 0)`);
    sql.exec("INSERT INTO record (id, body, projected) VALUES (1, ?, ?)", kept.body, kept.projected);
    sql.exec("CREATE TABLE usage_outbox (key TEXT PRIMARY KEY, start INTEGER NOT NULL, body TEXT NOT NULL)");
    for (const line of kept.lines) {
      sql.exec(
        "INSERT INTO usage_outbox (key, start, body) VALUES (?, ?, ?)",
        line.key,
        line.start,
        line.body,
      );
    }
    if (kept.step !== null) {
      sql.exec("CREATE TABLE quota_step (id INTEGER PRIMARY KEY CHECK (id = 1), body TEXT NOT NULL)");
      sql.exec("INSERT INTO quota_step (id, body) VALUES (1, ?)", kept.step);
    }
    if (options.alarmAt !== undefined) await state.storage.setAlarm(options.alarmAt);
  });
  await evictDurableObject(legacyObject(id));
}

/** One subscription of `resource` bought for the tenant's first customer: its id. */
export async function buyFor(
  t: Tenant,
  resource: string,
  extra: Record<string, unknown> = {},
): Promise<string> {
  const r = await expectOk(
    call("POST", "/v1/subscriptions/", {
      token: t.partnerKey,
      body: { objects: [{ customer: t.customers[0], resource, amount: 1, ...extra }] },
    }),
    201,
  );
  return r.objects[0].id;
}

/**
 * Makes the place reserved after subscription `id` look abandoned, as time would (reserved 30 days
 * ago), and restarts its shard.
 */
export async function abandonPlace(id: string): Promise<void> {
  await runInDurableObject(subscriptionShard(env, id), (_i, state) => {
    const row = state.storage.sql.exec<{ body: string }>("SELECT body FROM records WHERE id = ?", id).one();
    const body = {
      ...JSON.parse(row.body),
      nextReservedAt: new Date(Date.now() - 86_400_000 * 30).toISOString(),
    };
    state.storage.sql.exec("UPDATE records SET body = ? WHERE id = ?", JSON.stringify(body), id);
  });
  await evictDurableObject(subscriptionShard(env, id));
}
