import { upsertProjections } from "../db/subscriptions";
import type { SubscriptionRecord } from "../domain/subscriptions";

/** How many projections one D1 batch writes at most. */
const BATCH = 50;

/** Statements a push writes in its projection's batch, built on the env the batch goes to. */
export type Rider = (env: Env) => D1PreparedStatement[];

interface Waiting {
  record: SubscriptionRecord;
  riders: Rider[];
  settled: Array<{ resolve: (bookmark: string | null) => void; reject: (error: unknown) => void }>;
}

/**
 * A shard's pushes of projections to the D1 read model, written together: while one batch is on
 * its way, the pushes that come in wait for the next, which takes them all (a group commit). Each
 * push still resolves only once its version is in D1, so a change answers after its caller can
 * list it. A batch that fails is tried again one projection at a time, so one that D1 refuses
 * fails alone. A push may bring statements that must land with it (`Rider`): they go in whichever
 * batch its projection goes in, this push's only, never a retry's.
 */
export class ProjectionPushes {
  private waiting = new Map<string, Waiting>();
  private writing: Promise<void> | null = null;

  constructor(
    /** The shard's env as it is now (a test may replace it). */
    private readonly env: () => Env,
  ) {}

  /** Resolves once the version is in D1, with the D1 bookmark of the batch that wrote it. */
  push(record: SubscriptionRecord, rider?: Rider): Promise<string | null> {
    return new Promise((resolve, reject) => {
      const queued = this.waiting.get(record.id);
      const settled = [...(queued?.settled ?? []), { resolve, reject }];
      const riders = [...(queued?.riders ?? []), ...(rider ? [rider] : [])];
      const newest = queued && queued.record.version > record.version ? queued.record : record;
      this.waiting.set(record.id, { record: newest, riders, settled });
      this.writing ??= this.write();
    });
  }

  private async write(): Promise<void> {
    while (this.waiting.size > 0) {
      const batch = [...this.waiting.values()].slice(0, BATCH);
      for (const w of batch) this.waiting.delete(w.record.id);
      try {
        const bookmark = await this.upsert(batch);
        for (const w of batch) for (const s of w.settled) s.resolve(bookmark);
      } catch (error) {
        if (batch.length === 1) for (const s of batch[0]?.settled ?? []) s.reject(error);
        else await Promise.all(batch.map((w) => this.alone(w)));
      }
    }
    this.writing = null;
  }

  private async alone(w: Waiting): Promise<void> {
    try {
      const bookmark = await this.upsert([w]);
      for (const s of w.settled) s.resolve(bookmark);
    } catch (error) {
      for (const s of w.settled) s.reject(error);
    }
  }

  /**
   * One batch, in a D1 session of its own: its bookmark proves the write to a request that waits
   * on it, which then answers it without a read of its own (src/http/d1-session.ts).
   */
  private async upsert(batch: readonly Waiting[]): Promise<string | null> {
    const base = this.env();
    const session = base.DB.withSession("first-primary");
    // The session stands in for the binding, as it does for a request (src/http/d1-session.ts).
    const env = { ...base, DB: session as unknown as D1Database };
    await upsertProjections(
      env,
      batch.map((w) => w.record),
      batch.flatMap((w) => w.riders.flatMap((rider) => rider(env))),
    );
    return session.getBookmark();
  }
}
