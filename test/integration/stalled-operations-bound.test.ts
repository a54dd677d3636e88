import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { requeueStalledOperations, STALLED_PER_RUN } from "../../src/app/operations";
import { recoveryBoundMs } from "../../src/domain/recovery";
import type { OperationMessage } from "../../src/objects/operations-queue";
import { limitedD1 } from "../limited-d1";

/**
 * The cron's stalled-operation sweep claims each operation that made no progress (one D1 write
 * each) and queues it again. It paged on until none was left, in one invocation of the cron: after
 * an outage of the operations consumer that is thousands of claims, past D1's 1,000 queries an
 * invocation, so the sweep failed half-way, and every step of the cron after it (deleting what
 * expired, closing the usage month, resending webhooks) failed with it, run after run. Now one
 * sweep claims at most STALLED_PER_RUN; the rest stay stalled, for the next run.
 */

const COUNT = 1_100;

describe("the stalled-operation sweep with more stalled than one run takes", () => {
  it(`claims at most ${STALLED_PER_RUN} a run, within D1's limits; the runs after take the rest, each once`, async () => {
    const old = new Date(Date.now() - 86_400_000).toISOString();
    const refs = Array.from({ length: COUNT }, (_, i) => `op_stalled_${String(i).padStart(5, "0")}`);
    const insert = env.DB.prepare(
      `INSERT INTO operations (op_ref, partner_id, kind, payload, status, attempts, created_at, updated_at, expires_at)
       VALUES (?, 'partner-stalled', 'cancel', '{}', 'queued', 0, ?, ?, ?)`,
    );
    for (let i = 0; i < COUNT; i += 100) {
      await env.DB.batch(
        refs.slice(i, i + 100).map((ref) => insert.bind(ref, old, old, "2999-01-01T00:00:00.000Z")),
      );
    }
    const sent: string[] = [];
    const queue = {
      send: async (body: OperationMessage) => {
        if ("opRef" in body) sent.push(body.opRef);
      },
      sendBatch: async (messages: Iterable<{ body: OperationMessage }>) => {
        for (const { body } of messages) if ("opRef" in body) sent.push(body.opRef);
      },
    };
    const d1 = limitedD1(env.DB);
    const cronEnv = { ...env, DB: d1.db, OPERATIONS: queue as unknown as Queue };

    const now = Date.now() + recoveryBoundMs(env) + 1_000;
    let runs = 0;
    for (; runs < 10 && sent.length < COUNT; runs++) {
      d1.invocation();
      const before = sent.length;
      const { requeued } = await requeueStalledOperations(cronEnv, new Date(now + runs));
      expect(requeued).toBe(sent.length - before);
      expect(requeued).toBeLessThanOrEqual(STALLED_PER_RUN);
    }
    expect(runs).toBe(Math.ceil(COUNT / STALLED_PER_RUN));
    expect(sent.sort()).toEqual(refs);
  }, 60_000);
});
