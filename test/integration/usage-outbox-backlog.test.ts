import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import {
  type SubscriptionObject,
  subscriptionObject,
  subscriptionShard,
} from "../../src/objects/subscription-object";
import { expectBooksBalance } from "../books";
import { failingD1, tenantWithCatalog } from "../helpers";
import { buyFor } from "../legacy";
import { limitedD1 } from "../limited-d1";

/**
 * A cloud's usage lines wait in its shard (`UsageOutbox`) until D1 takes them. While D1 is down
 * they pile up: one a stop, up to a month's run history (5,000 intervals). The push that follows
 * wrote every waiting line in one D1 batch, one statement each; past D1's 1,000 queries per
 * invocation that batch fails, every time, so the lines were never billed, and the read model,
 * pushed after them, kept showing the cloud as it was (running: the month close never finds it
 * billed). Now a push writes its lines in bounded batches, each forgotten once it lands, and
 * leaves what is past its bound to the subscription's next wake, soon after.
 */

const CYCLES = 1_010;

const setDb = (id: string, db: D1Database) =>
  runInDurableObject(subscriptionShard(env, id), (instance: SubscriptionObject) => {
    const own = instance as unknown as { env: Env };
    own.env = { ...own.env, DB: db };
  });

const waitingLines = (id: string) =>
  runInDurableObject(
    subscriptionShard(env, id),
    (_i, state) => state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM usage_lines").one().n,
  );

describe("a cloud whose usage lines piled up while D1 was down", () => {
  it("has every line written once D1 is back, none twice, each invocation within D1's limits", async () => {
    const t = await tenantWithCatalog(1, 100);
    const id = await buyFor(t, "cumulus");
    const object = subscriptionObject(env, id);
    await setDb(id, failingD1(env.DB, "prepare", "batch"));
    // Each cycle runs 1 s (one line), one after the other, from now on.
    const from = Date.now();
    for (let i = 0; i < CYCLES; i++) {
      expect((await object.run("start", new Date(from + i * 2_000))).ok).toBe(true);
      expect((await object.run("stop", new Date(from + i * 2_000 + 1_000))).ok).toBe(true);
    }
    expect(await waitingLines(id)).toBe(CYCLES);

    const d1 = limitedD1(env.DB);
    await setDb(id, d1.db);
    const shard = subscriptionShard(env, id);
    for (let run = 0; run < 40 && (await waitingLines(id)) > 0; run++) {
      d1.invocation();
      expect(await runDurableObjectAlarm(shard)).toBe(true);
    }
    expect(await waitingLines(id)).toBe(0);
    expect(d1.largestBatch).toBeLessThanOrEqual(100);

    const lines = await env.DB.prepare(
      "SELECT count(*) AS n, count(DISTINCT key) AS keys, sum(seconds) AS seconds FROM charges WHERE subscription_id = ? AND kind = 'usage'",
    )
      .bind(id)
      .first<{ n: number; keys: number; seconds: number }>();
    expect(lines).toEqual({ n: CYCLES, keys: CYCLES, seconds: CYCLES });
    // The read model, pushed after the lines, shows the cloud stopped, at its last version.
    const record = await object.get();
    const row = await env.DB.prepare("SELECT running_since, version FROM subscriptions WHERE id = ?")
      .bind(id)
      .first<{ running_since: number | null; version: number }>();
    expect(row).toEqual({ running_since: null, version: record?.version });
    await setDb(id, env.DB);
    await expectBooksBalance(t);
  }, 120_000);
});
