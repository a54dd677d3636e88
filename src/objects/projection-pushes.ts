import { upsertProjections } from "../db/subscriptions";
import type { SubscriptionRecord } from "../domain/subscriptions";

/** How many projections one D1 batch writes at most. */
const BATCH = 50;

interface Waiting {
  record: SubscriptionRecord;
  settled: Array<{ resolve: () => void; reject: (error: unknown) => void }>;
}

/**
 * A shard's pushes of projections to the D1 read model, written together: while one batch is on
 * its way, the pushes that come in wait for the next, which takes them all (a group commit). Each
 * push still resolves only once its version is in D1, so a change answers after its caller can
 * list it. A batch that fails is tried again one projection at a time, so one that D1 refuses
 * fails alone.
 */
export class ProjectionPushes {
  private waiting = new Map<string, Waiting>();
  private writing: Promise<void> | null = null;

  constructor(
    /** The shard's env as it is now (a test may replace it). */
    private readonly env: () => Env,
  ) {}

  push(record: SubscriptionRecord): Promise<void> {
    return new Promise((resolve, reject) => {
      const queued = this.waiting.get(record.id);
      const settled = [...(queued?.settled ?? []), { resolve, reject }];
      const newest = queued && queued.record.version > record.version ? queued.record : record;
      this.waiting.set(record.id, { record: newest, settled });
      this.writing ??= this.write();
    });
  }

  private async write(): Promise<void> {
    while (this.waiting.size > 0) {
      const batch = [...this.waiting.values()].slice(0, BATCH);
      for (const w of batch) this.waiting.delete(w.record.id);
      try {
        await upsertProjections(
          this.env(),
          batch.map((w) => w.record),
        );
        for (const w of batch) for (const s of w.settled) s.resolve();
      } catch (error) {
        if (batch.length === 1) for (const s of batch[0]?.settled ?? []) s.reject(error);
        else await Promise.all(batch.map((w) => this.alone(w)));
      }
    }
    this.writing = null;
  }

  private async alone(w: Waiting): Promise<void> {
    try {
      await upsertProjections(this.env(), [w.record]);
      for (const s of w.settled) s.resolve();
    } catch (error) {
      for (const s of w.settled) s.reject(error);
    }
  }
}
