import type { SubscriptionRecord } from "../domain/subscriptions";
import type { DeploymentPatch } from "../domain/webhooks";
import { subscriptionObject } from "../objects/subscription-object";
import { unwrap } from "./subscriptions";

/**
 * Records what a vendor reports of subscription `id` (the vendor API's PATCH) and carries its
 * deployment status on to the later terms of its chain, as `chainDeployment` says: an extension or
 * renewal bought before an UNDEPLOYED is undeployed with the term it follows (else, once that term
 * ended, it would be renewed, charged again, for an application its vendor deprovisioned), and
 * DEPLOYED again lifts it, up to a live term its vendor reported UNDEPLOYED itself (the terms after
 * it are undeployed with that one). A term that has ended carries nothing: its vendor was told it ended.
 * Again, it changes nothing: a report whose walk died half-way is finished by the vendor's retry.
 */
export async function reportDeployment(
  env: Env,
  id: string,
  patch: DeploymentPatch,
): Promise<SubscriptionRecord> {
  const record = unwrap(await subscriptionObject(env, id).setDeployment(patch));
  const status = patch.deploymentStatus;
  if (record.endedAt !== null || (status !== "UNDEPLOYED" && status !== "DEPLOYED")) return record;
  let next = record.nextId;
  for (let hops = 0; hops < 1000 && next !== null; hops++) {
    const outcome = await subscriptionObject(env, next).setDeployment({ deploymentStatus: status }, true);
    // A place held for an extension being bought has no object yet: created, it takes the status
    // of the term it follows (`Subscription.create`).
    if (!outcome.ok) break;
    // A live term still UNDEPLOYED was undeployed by its vendor itself: the terms after it are
    // undeployed with it (its UNDEPLOYED carried there), so DEPLOYED on a term before lifts none.
    if (
      status === "DEPLOYED" &&
      outcome.value.endedAt === null &&
      outcome.value.deploymentStatus === "UNDEPLOYED"
    )
      break;
    next = outcome.value.nextId;
  }
  return record;
}
