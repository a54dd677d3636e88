import { findOperation } from "../db/operations";
import { findOrders } from "../db/orders";
import { type Decision, homeOf } from "../domain/commissions";
import { AppError } from "../domain/errors";
import { logEvent } from "../domain/log";
import { EVERYTHING } from "../domain/scope";
import type { SubscriptionRecord } from "../domain/subscriptions";
import type { OpenRecovery } from "../objects/ledger-commissions";
import { operationsQueue, type RecoveryRequest } from "../objects/operations-queue";
import { ledgerOf } from "../objects/quota-ledger";
import { abandon, type BuyOptions, type PurchaseRecovery, settle } from "./subscriptions";

/**
 * Settling what a request or a consumer that died left open (README, "Recovery"): a purchase's
 * commission found by its ledger's sweep, or by a cancel of one of its subscriptions.
 */

/**
 * Settles stratus's own commission `serial` (kept by ledger `home`) if it is still pending: the
 * recovery sweep's message for a purchase whose request may be gone (`recoverPurchase`).
 */
export async function recoverCommission(env: Env, request: RecoveryRequest): Promise<void> {
  const open = await openRecovery(env, request.home, request.serial);
  if (!open) return;
  const recovery = open.context as unknown as PurchaseRecovery;
  const outcome = await recoverPurchase(env, recovery, new Date(), false, open.decision);
  logEvent("recovery", { outcome, home: request.home, serial: request.serial });
}

/**
 * Settles a purchase whose commission is still open after its request may have died, by what
 * its records say happened. Run as an operation, the operation decides: while it is queued or
 * running it will settle the purchase itself (the stalled-operation sweep sees that it runs);
 * succeeded, the purchase took effect; failed or gone, it is undone. Answered at once, it took
 * effect exactly when its orders were written completed (the last step before the accept);
 * otherwise it is undone, unless `leaveUnwritten`: then one whose orders are not written is
 * left to its request or the sweep ("not taken effect"). Idempotent, and safe against the request
 * finishing meanwhile: the commission's own decision is final, and the loser of a race follows it.
 */
export async function recoverPurchase(
  env: Env,
  recovery: PurchaseRecovery,
  now: Date,
  leaveUnwritten = false,
  decided: Decision | null = null,
): Promise<"took effect" | "undone" | "left to its operation" | "not taken effect"> {
  const { ids, opRef } = recovery;
  let tookEffect: boolean;
  // Decided already, by a settle or an undo that died before its follow-up: that decision stands.
  if (decided) {
    tookEffect = decided === "accept";
  } else if (opRef) {
    const state = (await findOperation(env, opRef, EVERYTHING))?.status ?? null;
    if (state === "queued" || state === "running") return "left to its operation";
    tookEffect = state === "succeeded";
  } else {
    const written = await findOrders(env, Object.values(ids.orders));
    tookEffect =
      written.length === Object.keys(ids.orders).length && written.every((o) => o.state === "completed");
    if (!tookEffect && leaveUnwritten) return "not taken effect";
  }
  let outcome: "took effect" | "undone";
  if (tookEffect) {
    await settle(env, ids).catch((error) => {
      if (!(error instanceof AppError)) throw error;
    });
    outcome = "took effect";
  } else {
    outcome = await abandon(env, ids, now);
  }
  // A decision made by its operation's own work (a vendor's report) whose follow-up died: the
  // operation, left running, is run again to answer what was decided (201, or 424 after FAILED).
  if (decided && opRef) await operationsQueue(env).send({ opRef });
  return outcome;
}

/**
 * Before a subscription is changed by request (ended, extended, started or stopped, its amount
 * changed): if its purchase's commission is still open (its request died half-way, or is still on
 * its way), the purchase is settled first, so the change applies to what was really bought: ending
 * it releases quota that was really held, an extension follows a term that was bought, a cloud runs
 * and is billed only once it is. A purchase answered at once that has not taken effect (its orders
 * not written) is given up by a cancel only: its request, or that request's retry, may still
 * finish it, so any other change answers 409 and the recovery sweep decides it after its bound.
 * A purchase whose operation is still running (waiting on a vendor) answers 409: `action` it once
 * it has finished. Answers whether it settled one (the record may have changed).
 */
export async function settleOpenPurchase(
  env: Env,
  record: SubscriptionRecord,
  now: Date,
  action: "cancel" | "extend" | "start" | "stop" | "change" | "consume",
): Promise<boolean> {
  const open = await openPurchaseOf(env, record);
  if (!open) return false;
  const outcome = await recoverPurchase(
    env,
    open.context as unknown as PurchaseRecovery,
    now,
    action !== "cancel",
    open.decision,
  );
  if (outcome === "not taken effect") {
    throw new AppError(
      "conflict",
      `the purchase of subscription ${record.id} has not taken effect yet; ${action} it once it has (a retry of its request with the same Idempotency-Key finishes it; one given up is undone within the recovery bound)`,
    );
  }
  if (outcome === "left to its operation") {
    throw new AppError(
      "conflict",
      `the purchase of subscription ${record.id} is still in progress; ${action} it once its operation has finished`,
    );
  }
  return true;
}

/**
 * Whether the purchase of `record` is still open: its commission pending (a vendor, a dead
 * request), or decided with what follows the decision not done yet.
 */
export async function purchaseOpen(env: Env, record: SubscriptionRecord): Promise<boolean> {
  return (await openPurchaseOf(env, record)) !== null;
}

async function openPurchaseOf(env: Env, record: SubscriptionRecord) {
  if (record.serial === null || record.endedAt !== null) return null;
  return openRecovery(env, purchaseHome(record), record.serial);
}

/**
 * What a renewal of `record` has its own issue ask instead of `purchaseOpen` (`BuyOptions.unlessOpen`):
 * `record`'s purchase, if its commission is kept on the ledger the renewal's is issued to (its
 * customer's, `homeOf`: a term bought alone, or with its customer the purchase's first). Undefined
 * when there is nothing to ask, or it must be asked apart.
 */
export function purchaseAskedInIssue(record: SubscriptionRecord): BuyOptions["unlessOpen"] {
  const home = homeOf([record.customerId], null);
  if (record.serial === null || record.endedAt !== null || purchaseHome(record) !== home) return undefined;
  return { home, serial: record.serial };
}

/** The ledger that keeps `record`'s purchase's commission (`buy`). */
const purchaseHome = (record: SubscriptionRecord) => record.commissionHome ?? record.customerId;

/** The context is opaque JSON to the RPC's types, which cannot name it: it is what the ledger stored. */
const openRecovery = async (env: Env, home: string, serial: number) =>
  (await ledgerOf(env, home).openRecovery(serial)) as OpenRecovery | null;
