import type { SubscriptionRecord } from "../domain/subscriptions";
import { chainStatus, type DeploymentPatch, type DeploymentStatus } from "../domain/webhooks";
import { type DeploymentCarry, operationsQueue } from "../objects/operations-queue";
import { subscriptionObject } from "../objects/subscription-object";
import { unwrap } from "./subscriptions";

/**
 * How many later terms one request, or one message of the operations queue, carries a report to
 * (an object call each): a chain has no bound on its terms (a renewed term is not ended, so a daily
 * chain grows a term a day, and extensions may be bought years ahead), so the rest is carried on
 * by the next message, each within what one invocation may make.
 */
export const CARRIES_PER_CALL = 100;

/**
 * Records what a vendor reports of subscription `id` (the vendor API's PATCH) and carries its
 * deployment status on to the later terms of its chain, as `chainDeployment` says: an extension or
 * renewal bought before an UNDEPLOYED is undeployed with the term it follows (else, once that term
 * ended, it would be renewed, charged again, for an application its vendor deprovisioned), and
 * DEPLOYED again lifts it, up to a live term its vendor reported UNDEPLOYED itself (the terms after
 * it are undeployed with that one). A term that has ended carries nothing: its vendor was told it ended.
 * The request carries it to the first `CARRIES_PER_CALL` terms; the operations queue, to the rest.
 * Should the request die half-way, the push of the report's event has the operations queue carry
 * it all the same (`SubscriptionStore.push`); again, it changes nothing.
 */
export async function reportDeployment(
  env: Env,
  id: string,
  patch: DeploymentPatch,
): Promise<SubscriptionRecord> {
  const record = unwrap(await subscriptionObject(env, id).setDeployment(patch));
  const status = patch.deploymentStatus;
  if (record.endedAt !== null || status === undefined) return record;
  await carryDeployment(env, { from: record.id, status }, record.nextId);
  return record;
}

/**
 * Carries on a report from the operations queue (`carry`): the status its term has now (`chainStatus`),
 * or, should that term have ended since, the status the message names, unless the term ended with
 * another (`endedDeploymentStatus`): the message is older than a report on it whose own walk (and
 * carry) has the later terms, and carried late it would undo that report there (a message is
 * retried, and sent again out of attempts, for as long as it fails).
 */
export async function continueDeployment(env: Env, carry: DeploymentCarry): Promise<void> {
  const from = await subscriptionObject(env, carry.from).get();
  if (!from) return;
  if (from.endedAt !== null && !endedWith(from, carry.status)) return;
  const status = from.endedAt === null ? chainStatus(from.deploymentStatus) : carry.status;
  await carryDeployment(env, { from: from.id, status }, carry.next ?? from.nextId);
}

/** Whether ended term `from` ended with `status` as its chain reads it (unknown for one ended before it was kept). */
const endedWith = (from: SubscriptionRecord, status: DeploymentStatus) =>
  from.endedDeploymentStatus === undefined || chainStatus(from.endedDeploymentStatus) === chainStatus(status);

/**
 * Carries `status`, reported on term `from`, to the terms of its chain from `next` on, up to
 * `CARRIES_PER_CALL` of them; the rest go in one message to the operations queue, which carries
 * them on the same way. Walks cross: a later report on `from` may have walked these terms while
 * this one was on its way, and this one's older status, written after, would stand (a term left
 * DEPLOYED, renewed and charged, after its vendor's UNDEPLOYED). So once its terms are walked,
 * `from` is read again: if its status has changed since, they are walked again with the one it has.
 */
async function carryDeployment(
  env: Env,
  report: { from: string; status: DeploymentStatus },
  next: string | null,
): Promise<void> {
  // Nothing after it, or nothing to carry: no walk, so none to cross (no read of `from` again).
  if (next === null || !carried(report.status)) return;
  let status = report.status;
  for (let walks = 0; ; walks++) {
    const left = await walk(env, status, next);
    const now = await statusOf(env, report.from, status);
    if (now === status || !carried(now)) {
      if (left !== null)
        await operationsQueue(env).send({ carry: { from: report.from, status, next: left } });
      return;
    }
    // Changed again while this one walked: the queue walks the chain again from its start, with
    // what `from` has then (which its own walk checks the same way).
    if (walks === REWALKS) {
      await operationsQueue(env).send({ carry: { from: report.from, status: now } });
      return;
    }
    status = now;
  }
}

/** How many times one request or message walks its terms again before leaving it to the queue. */
const REWALKS = 2;

const carried = (status: DeploymentStatus) => status === "UNDEPLOYED" || status === "DEPLOYED";

/** The status term `from` carries now: its own while it is live (`chainStatus`), else the one reported (`walked`). */
async function statusOf(env: Env, from: string, walked: DeploymentStatus): Promise<DeploymentStatus> {
  const record = await subscriptionObject(env, from).get();
  return record && record.endedAt === null ? chainStatus(record.deploymentStatus) : walked;
}

/**
 * Carries `status` to the terms from `next` on, up to `CARRIES_PER_CALL` of them: the term it
 * stopped before, if it stopped for that bound (null: the walk is done).
 */
async function walk(env: Env, status: DeploymentStatus, next: string | null): Promise<string | null> {
  if (!carried(status)) return null;
  for (let hops = 0; next !== null; hops++) {
    if (hops === CARRIES_PER_CALL) return next;
    const outcome = await subscriptionObject(env, next).setDeployment({ deploymentStatus: status }, true);
    // A place held for an extension being bought has no object yet: created, it takes the status
    // of the term it follows (`Subscription.create`).
    if (!outcome.ok) return null;
    // A live term still UNDEPLOYED was undeployed by its vendor itself: the terms after it are
    // undeployed with it (its UNDEPLOYED carried there), so DEPLOYED on a term before lifts none.
    if (
      status === "DEPLOYED" &&
      outcome.value.endedAt === null &&
      outcome.value.deploymentStatus === "UNDEPLOYED"
    )
      return null;
    next = outcome.value.nextId;
  }
  return null;
}
