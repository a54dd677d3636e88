import { queueVerdict } from "../db/depletion-queue";
import { type TaggedJson, tagJson } from "../domain/etag";
import { jsonText } from "../domain/json";
import { type Scope, sees } from "../domain/scope";
import {
  type Status,
  type SubscriptionRecord,
  type SubscriptionWire,
  statusOf,
  toWire,
} from "../domain/subscriptions";

/** A read: the wire JSON with its ETag, or the record and its queued status for the caller to present. */
export type SubscriptionView = TaggedJson<SubscriptionWire> | { body: string; queued: boolean };

/**
 * What a Subscription keeps in memory to answer reads: its record parsed, the wire JSON
 * rendered of it per status with its ETag (so a read hashes nothing), and (for a depletable) whether it waits behind an older one. The
 * object drops the record on every commit and the queued verdict when told its queue changed.
 */
export class SubscriptionReads {
  private current:
    | { body: string; record: SubscriptionRecord; wires: Map<Status, TaggedJson<SubscriptionWire>> }
    | null
    | undefined;
  /** Whether this depletable waits (`queueVerdict`), while no change to its queue was told. */
  private queued: boolean | undefined;
  /** Counts `queueChanged` calls, so a verdict asked of D1 before one is not kept after it. */
  private queueChanges = 0;

  constructor(
    /** The shard's env as it is now (a test may replace it). */
    private readonly env: () => Env,
    /** The stored record, JSON text. */
    private readonly stored: () => string | null,
    /** The version of the record the D1 read model has. */
    private readonly projected: () => number,
  ) {}

  /**
   * A read within `scope`, or null if it is not there for that caller.
   * The wire JSON when the object alone knows it all; a subscription with extensions needs its
   * chain from D1, so then the record (JSON text) and its queued status, for the caller to present.
   */
  async view(scope: Scope, now: number): Promise<SubscriptionView | null> {
    const current = this.parsed();
    if (!current || !sees(scope, current.record)) return null;
    const { body, record, wires } = current;
    const queued = record.kind === "depletable" && record.endedAt === null && (await this.queuedNow(record));
    if (record.nextId !== null) return { body, queued };
    const status = statusOf(record, new Date(now), queued);
    let wire = wires.get(status);
    if (wire === undefined) {
      wire = tagJson(jsonText(toWire(record, status, [])));
      wires.set(status, wire);
    }
    return wire;
  }

  /** The record changed: it is read again. */
  recordChanged(): void {
    this.current = undefined;
  }

  /** A depletable before this one in its queue was created or ended. */
  queueChanged(): void {
    this.queued = undefined;
    this.queueChanges += 1;
  }

  private parsed() {
    if (this.current === undefined) {
      const body = this.stored();
      this.current =
        body === null ? null : { body, record: JSON.parse(body) as SubscriptionRecord, wires: new Map() };
    }
    return this.current;
  }

  /**
   * Whether it waits: for its purchase to take effect, or behind an older depletable in use. Once
   * its purchase and the older ones' took effect, only the ones before it can change that, by being
   * created or by ending, and each then tells the ones after it (`queueChanged`): so an answer that
   * `lasts` is kept until then, instead of asking D1 on every read. It is kept only once this one is
   * in the read model, where they look for it. While a purchase is still to take effect, which
   * tells nobody, D1 is asked on every read.
   */
  private async queuedNow(r: SubscriptionRecord): Promise<boolean> {
    if (this.queued !== undefined) return this.queued;
    const changes = this.queueChanges;
    const { waits, lasts } = await queueVerdict(this.env(), r);
    if (lasts && changes === this.queueChanges && this.projected() > 0) this.queued = waits;
    return waits;
  }
}
