/**
 * A subscription kept the way stratus kept them before shards: an object of its own, named by the
 * subscription's id, holding one record (row 1 of `record`), its undispatched events (`outbox`), its
 * usage lines on their way to D1 (`usage_outbox`) and an open quota step (`quota_step`). Its shard
 * takes all of it over the first time the subscription is asked for (one the read model knows),
 * or when the old object's alarm fires, whichever comes first; the subscription's alarm then does
 * what the old object had left to do, and the old object is emptied.
 */

/** What an object of its own hands over to the subscription's shard. */
export interface HandedOver {
  body: string;
  projected: number;
  events: { sequence: number; event_id: string; type: string; date: string; dispatched: number }[];
  usage: { key: string; start: number; body: string }[];
  step: string | null;
}

/** The tables in an object's storage. */
export function storageTables(sql: SqlStorage): Set<string> {
  return new Set(
    sql
      .exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table'")
      .toArray()
      .map((row) => row.name),
  );
}

/** What the object of its own keeps, or null if it keeps nothing. */
export function legacyState(sql: SqlStorage): HandedOver | null {
  const present = storageTables(sql);
  if (!present.has("record")) return null;
  const record = sql
    .exec<{ body: string; projected: number }>("SELECT body, projected FROM record WHERE id = 1")
    .toArray()[0];
  if (!record) return null;
  return {
    body: record.body,
    projected: record.projected,
    events: present.has("outbox")
      ? sql
          .exec<HandedOver["events"][number]>(
            "SELECT sequence, event_id, type, date, dispatched FROM outbox WHERE dispatched = 0",
          )
          .toArray()
      : [],
    usage: present.has("usage_outbox")
      ? sql.exec<HandedOver["usage"][number]>("SELECT key, start, body FROM usage_outbox").toArray()
      : [],
    step: present.has("quota_step")
      ? (sql.exec<{ body: string }>("SELECT body FROM quota_step WHERE id = 1").toArray()[0]?.body ?? null)
      : null,
  };
}

/** Takes subscription `id`'s state into the shard's tables; call inside a storage transaction. */
export function adoptLegacy(sql: SqlStorage, id: string, state: HandedOver): void {
  sql.exec(
    "INSERT OR IGNORE INTO records (id, body, projected) VALUES (?, ?, ?)",
    id,
    state.body,
    state.projected,
  );
  for (const e of state.events) {
    sql.exec(
      `INSERT OR IGNORE INTO events (subscription, sequence, event_id, type, date, dispatched)
        VALUES (?, ?, ?, ?, ?, ?)`,
      id,
      e.sequence,
      e.event_id,
      e.type,
      e.date,
      e.dispatched,
    );
  }
  for (const line of state.usage) {
    sql.exec(
      "INSERT OR IGNORE INTO usage_lines (key, subscription, start, body) VALUES (?, ?, ?, ?)",
      line.key,
      id,
      line.start,
      line.body,
    );
  }
  if (state.step !== null) {
    sql.exec("INSERT OR IGNORE INTO quota_steps (subscription, body) VALUES (?, ?)", id, state.step);
  }
}
