import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { monthOf, previousMonth } from "../../src/domain/charges";
import { MAX_RUN_INTERVALS } from "../../src/domain/metering";
import { subscriptionObject, subscriptionShard } from "../../src/objects/subscription-object";
import { expectBooksBalance } from "../books";
import { call, expectOk, tenantWithCatalog } from "../helpers";
import { buyFor } from "../legacy";

/**
 * A cloud's run history holds at most MAX_RUN_INTERVALS intervals within a month (README, "A
 * cloud's history holds about a month"): past it a start answers 409 "until the month is billed".
 * A cloud stopped at the bound has every line of that month written: from the next month on it
 * starts again. Found by review: the check counted the history as last stored, whose month is only
 * dropped by a write at a later instant, which the refused start was the one to make, so a cloud
 * stopped at the bound could never start again.
 */

const MINUTE = 60_000;

/**
 * Gives cloud `id` the history MAX_RUN_INTERVALS starts and stops last month leave: one a minute
 * from the month's start, each stopped within its first second (no whole second run, so no line,
 * as the object would have written none).
 */
async function filledLastMonth(id: string): Promise<number> {
  const from = previousMonth(monthOf(new Date())).start.getTime();
  const runs = Array.from({ length: MAX_RUN_INTERVALS }, (_, i) => ({
    start: from + i * MINUTE,
    end: from + i * MINUTE + 500,
    quantity: 1,
  }));
  const shard = subscriptionShard(env, id);
  await runInDurableObject(shard, (_i, state) => {
    const row = state.storage.sql.exec<{ body: string }>("SELECT body FROM records WHERE id = ?", id).one();
    const body = { ...JSON.parse(row.body), runs };
    state.storage.sql.exec("UPDATE records SET body = ? WHERE id = ?", JSON.stringify(body), id);
  });
  await evictDurableObject(shard);
  return from;
}

describe("a cloud stopped with its history at the bound", () => {
  it("starts again once that month is over, its history keeping only the new month", async () => {
    const t = await tenantWithCatalog(1);
    const id = await buyFor(t, "cumulus");
    await filledLastMonth(id);
    expect((await subscriptionObject(env, id).get())?.runs).toHaveLength(MAX_RUN_INTERVALS);

    const started = await call("POST", `/v1/subscriptions/${id}/action/?do=start`, { token: t.partnerKey });
    expect(started.status, started.text).toBe(200);
    expect(started.body.run_state).toBe("running");
    const r = await subscriptionObject(env, id).get();
    // Last month, billed whole, has left the history.
    expect(r?.runs).toHaveLength(1);
    expect(r?.settledRuns).toMatchObject({ through: monthOf(new Date()).start.getTime(), intervals: 5000 });

    await expectOk(call("POST", `/v1/subscriptions/${id}/action/?do=stop`, { token: t.partnerKey }));
    await expectBooksBalance(t);
  });

  it("is still refused a start within that same month", async () => {
    const t = await tenantWithCatalog(1);
    const id = await buyFor(t, "cumulus");
    const from = await filledLastMonth(id);
    const sameMonth = await subscriptionObject(env, id).run(
      "start",
      new Date(from + MAX_RUN_INTERVALS * MINUTE),
    );
    expect(sameMonth.ok).toBe(false);
    expect((await subscriptionObject(env, id).get())?.runs).toHaveLength(MAX_RUN_INTERVALS);
  });
});
