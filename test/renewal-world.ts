import {
  createExecutionContext,
  createMessageBatch,
  createScheduledController,
  getQueueResult,
} from "cloudflare:test";
import { env } from "cloudflare:workers";
import { expect, vi } from "vitest";
import type { RenewalMessage } from "../src/app/renewals";
import { armFault, disarmFaults, type FaultStep } from "../src/domain/faults";
import type { SubscriptionRecord } from "../src/domain/subscriptions";
import worker from "../src/index";
import type { OperationMessage } from "../src/objects/operations-queue";
import { subscriptionObject } from "../src/objects/subscription-object";
import { recoverAll } from "./books";
import { failingD1, type keptQueue, type Tenant } from "./helpers";

/**
 * The world of the renewals soak (test/integration/renewal-soak.property.test.ts): a simulated
 * clock, the renewals and operations queues kept so the test delivers what it chooses, the stops
 * the partner was answered for, and the checks made once the queues are drained and recovery ran.
 */

const MINUTE = 60_000;

/** A stop the partner was answered for: the chain's live terms then, and how many renewals may still come. */
export interface Stop {
  terms: number;
  allowed: number;
  /** Accepted as an operation: it counts once that operation succeeded. */
  opRef?: string;
  /**
   * A cancel's term: a renewal a run took up before the cancel is bought, and lives on after the
   * cancelled term (README, Renewals: the cancel hands the chain's hold to it), so renews in turn.
   */
  cancelled?: string;
  /** `auto_renew` turned on by operations accepted before the stop, still queued: run after it, they undo it. */
  undoneBy: string[];
  /**
   * How many of the chain's `ons` were accepted by the stop: a queued toggle accepted after it
   * (as an off, the flag still on) that ran as an on once the stop had turned the flag off undoes
   * it too.
   */
  onsBefore: number;
}

export interface World {
  t: Tenant;
  now: number;
  roots: string[];
  stops: Map<number, Stop[]>;
  /** Terms that were a lapsed chain's last when it was extended by hand (over, auto_renew off). */
  lapsed: Set<string>;
  /**
   * Each chain's operations that may turn `auto_renew` on: a set to true, and every queued bare
   * toggle (on its chain's last term it flips the flag as it stands when it runs, `appliedOn`).
   */
  ons: Map<number, string[]>;
  renewals: ReturnType<typeof keptQueue>;
  operations: ReturnType<typeof keptQueue>;
  behind: Env;
  log: string[];
}

export const ms = (iso: string | null) => (iso === null ? Number.NaN : Date.parse(iso));

/** The terms of the chain from `root`, by their objects (a place reserved for no object ends it). */
export async function termsOf(root: string): Promise<SubscriptionRecord[]> {
  const out: SubscriptionRecord[] = [];
  let id: string | null = root;
  while (id !== null) {
    const r: SubscriptionRecord | null = await subscriptionObject(env, id).get();
    if (!r) break;
    out.push(r);
    id = r.nextId;
  }
  return out;
}

export const liveTerms = (terms: SubscriptionRecord[]) =>
  terms.filter((r) => r.endReason !== "failed").length;

/** Runs `work` at the simulated clock, with `armed` armed over it. */
export async function faulted<T>(
  w: World,
  armed: FaultStep | "d1" | null,
  work: (e: Env) => Promise<T>,
): Promise<T> {
  const e = armed === "d1" ? ({ ...w.behind, DB: failingD1(env.DB, "batch") } as Env) : w.behind;
  if (armed && armed !== "d1") armFault(armed);
  try {
    return await work(e);
  } finally {
    disarmFaults();
  }
}

/** Delivers the first `count` renewal messages the queue holds; what is retried stays in it. */
export async function deliverRenewals(w: World, count: number, e: Env, twice = false): Promise<void> {
  const mine = new Set(
    (
      await env.DB.prepare("SELECT id FROM subscriptions WHERE partner_id = ?")
        .bind(w.t.partnerId)
        .all<{ id: string }>()
    ).results.map((r) => r.id),
  );
  // Other sequences' chains (due too on this clock) are not this one's to renew.
  w.renewals.sent.splice(
    0,
    Infinity,
    ...w.renewals.sent.filter((m) => typeof m.subscription === "string" && mine.has(m.subscription)),
  );
  const bodies: RenewalMessage[] = w.renewals.sent.splice(0, count);
  if (bodies.length === 0) return;
  const run = async () => {
    const batch = createMessageBatch<RenewalMessage>(
      "stratus-renewals",
      bodies.map((body, i) => ({ id: `soak-${w.now}-${i}`, timestamp: new Date(w.now), attempts: 1, body })),
    );
    await worker.queue(batch, e);
    return getQueueResult(batch, createExecutionContext());
  };
  const results = twice ? await Promise.all([run(), run()]) : [await run()];
  const retried = new Set(results.flatMap((r) => r.retryMessages.map((m) => m.msgId)));
  w.log.push(
    `  delivered ${bodies.map((b) => `${b.subscription.slice(-6)}${b.catchUp ? "+" : ""}`).join(" ")}${twice ? " twice" : ""}; retried ${retried.size}`,
  );
  bodies.forEach((body, i) => {
    if (retried.has(`soak-${w.now}-${i}`)) w.renewals.sent.push(body);
  });
}

/** Delivers the first `count` operation messages the queue holds; what is retried stays in it. */
export async function deliverOperations(w: World, count: number): Promise<void> {
  const bodies: OperationMessage[] = w.operations.sent.splice(0, count);
  if (bodies.length === 0) return;
  const batch = createMessageBatch<OperationMessage>(
    "stratus-operations",
    bodies.map((body, i) => ({ id: `soak-op-${i}`, timestamp: new Date(w.now), attempts: 1, body })),
  );
  await worker.queue(batch, w.behind);
  const retried = new Set(
    (await getQueueResult(batch, createExecutionContext())).retryMessages.map((m) => m.msgId),
  );
  w.log.push(`  operations ${bodies.length}, retried ${retried.size}`);
  bodies.forEach((body, i) => {
    if (retried.has(`soak-op-${i}`)) w.operations.sent.push(body);
  });
}

/** The chain's stop: how many renewals may still come (a run's message taken up before it, a renewal planned). */
export async function stopNow(
  w: World,
  chain: number,
  root: string,
  opRef?: string,
  cancelled?: string,
): Promise<Stop> {
  const terms = await termsOf(root);
  const ids = new Set(terms.map((r) => r.id));
  const claimed = w.renewals.sent.filter((m) => ids.has(m.subscription) && m.catchUp !== true).length;
  const last = terms.at(-1);
  const planned = last?.nextId ? 1 : 0;
  const undoneBy: string[] = [];
  for (const on of w.ons.get(chain) ?? []) if ((await statusOf(on)) === "queued") undoneBy.push(on);
  return {
    terms: liveTerms(terms),
    allowed: claimed + planned,
    undoneBy,
    onsBefore: (w.ons.get(chain) ?? []).length,
    ...(opRef ? { opRef } : {}),
    ...(cancelled ? { cancelled } : {}),
  };
}

/**
 * Whether operation `opRef` ran and left `auto_renew` on: a toggle's value is the one it set when it
 * ran, which its result answers, not the one read when it was accepted.
 */
export async function appliedOn(opRef: string): Promise<boolean> {
  const row = await operationRow(opRef);
  if (row?.status !== "succeeded" || row.result_body === null) return false;
  return (JSON.parse(row.result_body) as { object?: { auto_renew?: boolean } }).object?.auto_renew === true;
}

export const statusOf = async (opRef: string) => (await operationRow(opRef))?.status;

type OperationRow = { status: string; result_body: string | null };

/**
 * Operation rows as last read: the cron deletes a finished operation once it expires, and a
 * sequence's outage can pass that before the checks read it.
 */
const operationRows = new Map<string, OperationRow>();

async function operationRow(opRef: string): Promise<OperationRow | undefined> {
  const row = await env.DB.prepare("SELECT status, result_body FROM operations WHERE op_ref = ?")
    .bind(opRef)
    .first<OperationRow>();
  if (row) operationRows.set(opRef, row);
  return row ?? operationRows.get(opRef);
}

/** Reads every operation the checks may ask about, before a cron run can delete it. */
export async function noteOperations(w: World): Promise<void> {
  const refs = [...w.ons.values()].flat();
  for (const stops of w.stops.values()) for (const stop of stops) if (stop.opRef) refs.push(stop.opRef);
  for (const ref of refs) await operationRow(ref);
}

export const opRefOf = (r: { headers: Headers }) =>
  (r.headers.get("location") as string).split("/").filter(Boolean).at(-1) as string;

export async function cron(w: World): Promise<void> {
  await noteOperations(w);
  await worker.scheduled(createScheduledController({ scheduledTime: w.now, cron: "*/5 * * * *" }), w.behind);
}
/** Drains both queues, runs the recovery, and a cron run at the end: as a settled deployment stands. */
export async function settle(w: World): Promise<void> {
  for (let round = 0; round < 4; round++) {
    for (let i = 0; i < 400 && (w.renewals.sent.length > 0 || w.operations.sent.length > 0); i++) {
      await deliverOperations(w, 10);
      await deliverRenewals(w, 10, w.behind);
    }
    await recoverAll(w.t);
    // recoverAll runs on a clock past the recovery bound, then gives the real clock back.
    w.now += 15 * MINUTE;
    vi.useFakeTimers({ toFake: ["Date"], now: w.now });
    await cron(w);
  }
  for (let i = 0; i < 400 && (w.renewals.sent.length > 0 || w.operations.sent.length > 0); i++) {
    await deliverOperations(w, 10);
    await deliverRenewals(w, 10, w.behind);
  }
}

export async function checkChains(w: World): Promise<void> {
  for (const [chain, root] of w.roots.entries()) {
    const terms = (await termsOf(root)).filter((r) => r.endReason !== "failed");
    for (const [i, r] of terms.entries()) {
      if (i === 0) continue;
      const prev = terms[i - 1] as SubscriptionRecord;
      // No overlap; a gap only where the chain had lapsed when it was extended by hand (its last
      // term expired, or over with auto_renew off: README, `?do=extend`), never in a renewing chain.
      expect(ms(r.startTime), `${r.id} starts after ${prev.id}`).toBeGreaterThanOrEqual(ms(prev.endTime));
      if (ms(r.startTime) !== ms(prev.endTime))
        expect(
          prev.endReason === "expired" || w.lapsed.has(prev.id),
          `gap before ${r.id}: ${prev.id} lapsed`,
        ).toBe(true);
    }
    const last = terms.at(-1);
    if (last && last.endedAt === null)
      expect(
        ms(last.endTime),
        `chain ${chain}'s last term ${last.id} left live past its end`,
      ).toBeGreaterThan(w.now);
    for (const stop of w.stops.get(chain) ?? []) {
      // A queued stop that did not run, or a queued toggle that ran as an on, stopped nothing.
      if (stop.opRef && ((await statusOf(stop.opRef)) !== "succeeded" || (await appliedOn(stop.opRef))))
        continue;
      let undone = false;
      for (const on of [...stop.undoneBy, ...(w.ons.get(chain) ?? []).slice(stop.onsBefore)])
        undone ||= await appliedOn(on);
      if (undone) continue;
      const at = terms.findIndex((r) => r.id === stop.cancelled);
      if (at >= 0 && at < terms.length - 1) continue;
      expect(
        terms.length,
        `chain ${chain} renewed past a stop (${JSON.stringify(stop)})`,
      ).toBeLessThanOrEqual(stop.terms + stop.allowed);
    }
  }
}
