import { youngerInQueue } from "../db/depletion-queue";
import { uuidv7 } from "../domain/ids";
import { logError } from "../domain/log";
import type { SubscriptionRecord } from "../domain/subscriptions";
import { settleRuns } from "../domain/usage";
import { carriesOn, type EventType, eventOf } from "../domain/webhooks";
import { operationsQueue } from "./operations-queue";
import type { Rider } from "./projection-pushes";
import { createUsageLines, UsageOutbox } from "./usage-outbox";

/** An event of a syndicated subscription, as the webhooks pipeline takes it. */
export interface OutboxEvent {
  id: string;
  type: EventType;
  date: string;
  sequence: number;
}

interface OutboxRow extends Record<string, SqlStorageValue> {
  sequence: number;
  event_id: string;
  type: string;
  date: string;
  /** 1: made by the report that takes it out of PENDING (`settles`); null: stored before this was kept. */
  settles: number | null;
  /** 1: made by its vendor's own report that the later terms of its chain take (`carriesOn`). */
  carries: number | null;
}

/**
 * How many events one push hands to the webhooks pipeline at most (a D1 write and a queue message
 * each): events that piled up (the pipeline down a while) go with the pushes after, at once.
 */
export const EVENTS_PER_PUSH = 100;

/** Writes that landed with a push, and the D1 bookmark of the batch they landed in. */
export interface Landed {
  bookmark: string | null;
}

/** The tables a shard keeps its subscriptions in (one row each, its events, its usage lines). */
export function createSubscriptionTables(sql: SqlStorage): void {
  sql.exec(`CREATE TABLE IF NOT EXISTS records (
      id TEXT PRIMARY KEY, body TEXT NOT NULL, projected INTEGER NOT NULL DEFAULT 0)`);
  sql.exec(`CREATE TABLE IF NOT EXISTS events (
      subscription TEXT NOT NULL, sequence INTEGER NOT NULL, event_id TEXT NOT NULL, type TEXT NOT NULL,
      date TEXT NOT NULL, dispatched INTEGER NOT NULL DEFAULT 0, settles INTEGER, carries INTEGER,
      PRIMARY KEY (subscription, sequence))`);
  // Shards made before a column get it on their first start; their events keep it null.
  const columns = sql
    .exec<{ name: string }>("PRAGMA table_info(events)")
    .toArray()
    .map((c) => c.name);
  if (!columns.includes("settles")) sql.exec("ALTER TABLE events ADD COLUMN settles INTEGER");
  if (!columns.includes("carries")) sql.exec("ALTER TABLE events ADD COLUMN carries INTEGER");
  // Subscriptions given up before they were created (`giveUp`): none of them is ever created live.
  sql.exec("CREATE TABLE IF NOT EXISTS given_up (id TEXT PRIMARY KEY, at TEXT NOT NULL)");
  createUsageLines(sql);
}

/** Whether subscription `id` has an event its push has not handed to the webhooks pipeline yet. */
export function hasUndispatchedEvent(sql: SqlStorage, id: string): boolean {
  return (
    sql.exec("SELECT 1 FROM events WHERE subscription = ? AND dispatched = 0 LIMIT 1", id).toArray().length >
    0
  );
}

/**
 * A subscription's record in its shard's storage, kept as a transactional outbox: each version, and
 * for a syndicated product the event it makes, is written in the caller's transaction; pushing
 * them on (the version to the D1 read model, the events to the webhooks pipeline) comes after,
 * and is retried until it lands.
 */
export class SubscriptionStore {
  /**
   * The version D1 has, as far as this instance knows. Stored only with the next commit: a write
   * of its own after every push would double the object's writes, and an instance that starts
   * from an older stored value merely pushes the same version again (the upsert keeps the newest).
   */
  private projected: number | undefined;
  /** The stored row as this instance last read or wrote it (undefined: not read yet). */
  private row: { body: string; projected: number } | null | undefined;
  private readonly usage: UsageOutbox;
  /** What the next push of one version writes with it (`ride`), and whether that push landed. */
  private rider: { version: number; writes: Rider; landed: Landed | null } | null = null;

  constructor(
    private readonly storage: DurableObjectStorage,
    private readonly id: string,
    /** Has the shard's alarm push again, later each time pushes keep failing. */
    private readonly retryLater: () => Promise<void>,
    /** Has the shard's alarm push again at once: a push that made progress left some of it. */
    private readonly continueSoon: () => Promise<void>,
    /** Hands an event to the webhooks pipeline; handing the same one again changes nothing. */
    private readonly dispatch: (r: SubscriptionRecord, event: OutboxEvent) => Promise<void>,
    /** Tells depletable `id` that one before it in its queue was created or ended. */
    private readonly queueChanged: (id: string) => Promise<unknown>,
    /** Writes a version to the D1 read model (`ProjectionPushes`), resolving once it is there. */
    private readonly project: (r: SubscriptionRecord, rider?: Rider) => Promise<string | null>,
  ) {
    this.usage = new UsageOutbox(storage.sql);
  }

  /** The record as stored, JSON text. */
  json(): string | null {
    return this.stored()?.body ?? null;
  }

  /** After a transaction rolled back: what storage holds is read again. */
  forget(): void {
    this.row = undefined;
  }

  private stored() {
    if (this.row === undefined) {
      this.row =
        this.storage.sql
          .exec<{ body: string; projected: number }>(
            "SELECT body, projected FROM records WHERE id = ?",
            this.id,
          )
          .toArray()[0] ?? null;
    }
    return this.row;
  }

  /**
   * The purchase this subscription was to be created by was undone before it was (the recovery
   * sweep took its request for dead): created later, it is created failed, as of `at`.
   */
  giveUp(at: string): void {
    this.storage.sql.exec("INSERT OR IGNORE INTO given_up (id, at) VALUES (?, ?)", this.id, at);
  }

  /** When it was given up before it was created (`giveUp`), or null. */
  givenUpAt(): string | null {
    return (
      this.storage.sql.exec<{ at: string }>("SELECT at FROM given_up WHERE id = ?", this.id).toArray()[0]
        ?.at ?? null
    );
  }

  load(): SubscriptionRecord | null {
    const body = this.json();
    return body === null ? null : (JSON.parse(body) as SubscriptionRecord);
  }

  projectedVersion(): number {
    this.projected ??= this.stored()?.projected ?? 0;
    return this.projected;
  }

  /**
   * Stores the next version, the event describing it, if any, and the usage lines of the running
   * time it closes; call inside a storage transaction.
   */
  write(next: SubscriptionRecord): SubscriptionRecord {
    const previous = this.load();
    const type = next.delivery === "syndicated" ? eventOf(previous, next) : null;
    const changed = {
      ...next,
      version: (previous?.version ?? 0) + 1,
      sequence: next.sequence + (type ? 1 : 0),
    };
    // Its lines are read off the history as the change left it; what is stored then keeps only
    // the months not wholly billed (`withSettledRuns`).
    this.usage.record(previous, changed);
    const record = withSettledRuns(changed);
    const row = { body: JSON.stringify(record), projected: this.projectedVersion() };
    this.storage.sql.exec(
      `INSERT INTO records (id, body, projected) VALUES (?, ?, ?)
        ON CONFLICT (id) DO UPDATE SET body = excluded.body, projected = excluded.projected`,
      this.id,
      row.body,
      row.projected,
    );
    if (type) {
      // The vendor's report that takes it out of PENDING (DEPLOYED or FAILED) settles or undoes the
      // purchase waiting on it: this event's push wakes that operation (`push`).
      const settles =
        previous?.deploymentStatus === "PENDING" &&
        record.deploymentStatus !== "PENDING" &&
        record.operationRef !== null;
      // Its vendor's own UNDEPLOYED (or DEPLOYED lifting it): this event's push has it carried on
      // to the later terms of the chain (`push`), even if the request that reported it dies.
      const carries = previous !== null && carriesOn(previous, record);
      this.storage.sql.exec(
        "INSERT INTO events (subscription, sequence, event_id, type, date, settles, carries) VALUES (?, ?, ?, ?, ?, ?, ?)",
        this.id,
        record.sequence,
        // Time-ordered, as every id of a list is: the deliveries list pages by it, oldest first.
        `msg_${uuidv7().replaceAll("-", "")}`,
        type,
        new Date().toISOString(),
        settles ? 1 : 0,
        carries ? 1 : 0,
      );
    }
    this.row = row;
    return record;
  }

  /**
   * `writes` go to D1 in the batch of the next push of `version`, and only then: if that push
   * fails, the retries go without them. Answers, once that push is over, whether they landed
   * (`landed`: with the D1 bookmark of their batch).
   */
  ride(version: number, writes: Rider): { landed: Landed | null } {
    this.rider = { version, writes, landed: null };
    return this.rider;
  }

  /**
   * Pushes what the last commits left to push: the usage lines to the charges ledger, the version
   * to the D1 read model, the events to the webhooks pipeline. On failure the alarm tries again,
   * until it lands. Answers whether everything landed.
   */
  async push(env: Env): Promise<boolean> {
    const r = this.load();
    const rider = this.rider?.version === r?.version ? this.rider : null;
    this.rider = null;
    if (!r) return true;
    try {
      // Lines first: a read model that shows a version has every line of it, so the cron, which
      // closes a month once no cloud there runs since before its end, never closes one too early.
      // Past a push's bound, the rest go with the next push, the version with them.
      if (!(await this.usage.push(env, r))) {
        await this.continueSoon();
        return false;
      }
      const projected = this.projectedVersion();
      if (projected < r.version) {
        const bookmark = await this.project(r, rider?.writes);
        if (rider) rider.landed = { bookmark };
        // The depletables after this one in its queue are told when it is created (they may have
        // been created first: its id was chosen first) and when it ends, once the read model shows
        // it, and before this version counts as projected, so a failed push tells them again.
        if (r.kind === "depletable" && (projected === 0 || r.endedAt !== null)) {
          for (const id of await youngerInQueue(env, r)) await this.queueChanged(id);
        }
        this.projected = Math.max(this.projectedVersion(), r.version);
        // Stored at once for a depletable: restarted, one that found 0 here would ask D1 on each
        // read whether it is queued. Another kind stores it with its next commit; restarted
        // before that, it pushes this version again, which the upsert ignores.
        if (r.kind === "depletable") {
          this.storage.sql.exec("UPDATE records SET projected = ? WHERE id = ?", this.projected, this.id);
        }
      }
      // One more than a push hands on: whether some are left for the next push, at once.
      const events =
        r.delivery === "syndicated"
          ? this.storage.sql
              .exec<OutboxRow>(
                "SELECT * FROM events WHERE subscription = ? AND dispatched = 0 ORDER BY sequence LIMIT ?",
                this.id,
                EVENTS_PER_PUSH + 1,
              )
              .toArray()
          : [];
      const more = events.length > EVENTS_PER_PUSH;
      if (more) events.pop();
      // A vendor's report (DEPLOYED or FAILED) settles or undoes the purchase waiting on it. The
      // report's request runs that operation, but may die after the commit: the operation is woken
      // from here too, until the push of that report's event lands (a later report's push carries
      // it while it is undispatched). Only that event wakes it: any later change of the subscription
      // is long after its purchase was woken, and would queue a finished operation for nothing. (A
      // CREATED is made by the operation's own run, which needs no wake.) An event stored before
      // `settles` was kept wakes it as every MODIFIED once reported did: none is lost.
      const reported = r.deploymentStatus !== "PENDING";
      const wakes = events.some(
        (e) => e.settles === 1 || (e.settles === null && reported && e.type === "MODIFIED"),
      );
      if (wakes && r.operationRef !== null) await operationsQueue(env).send({ opRef: r.operationRef });
      // A vendor's own UNDEPLOYED (or DEPLOYED lifting it) goes on to the later terms of the chain
      // from the operations queue, until the push of its event lands: the walk its request makes
      // may die half-way, and the vendor, told of the term it reported, has no reason to report
      // again (else the chain's last term would be renewed, and charged, for an application its
      // vendor undeployed). Carrying again changes nothing (`continueDeployment`).
      if (r.nextId !== null && r.endedAt === null && events.some((e) => e.carries === 1))
        await operationsQueue(env).send({ carry: { from: r.id, status: r.deploymentStatus } });
      for (const event of events) {
        await this.dispatch(r, {
          id: event.event_id,
          type: event.type as EventType,
          date: event.date,
          sequence: event.sequence,
        });
        this.storage.sql.exec(
          "UPDATE events SET dispatched = 1 WHERE subscription = ? AND sequence = ?",
          this.id,
          event.sequence,
        );
      }
      if (more) await this.continueSoon();
      return !more;
    } catch (error) {
      logError("subscription.push_failed", error, { subscription: r.id, version: r.version });
      await this.retryLater();
      return false;
    }
  }
}

/**
 * `r` with its months wholly billed gone from its run history (`settleRuns`); anything but a
 * cloud, or one with no such month, as it is.
 */
function withSettledRuns(r: SubscriptionRecord): SubscriptionRecord {
  if (r.kind !== "caas") return r;
  const { intervals, settled } = settleRuns(r.id, r.runs, BigInt(r.unitPriceMinor), r.settledRuns);
  return intervals === r.runs ? r : { ...r, runs: intervals, ...(settled ? { settledRuns: settled } : {}) };
}
