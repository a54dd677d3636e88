import { DEPLOYMENT_STATUSES, type DeploymentStatus } from "../domain/webhooks";

/** The operations queue: what is sent to it, typed (the generated Env types every queue `Queue<unknown>`). */

/** A recovery message: the home ledger and serial of a commission whose request may be gone. */
export interface RecoveryRequest {
  home: string;
  serial: number;
}

/**
 * A vendor's report on term `from` (`status`, as it stood there when sent) to carry on to the
 * later terms of its chain, from term `next` (absent: the term after `from`).
 */
export interface DeploymentCarry {
  from: string;
  status: DeploymentStatus;
  next?: string;
}

/**
 * Runs operation `opRef`; or (`recover`) settles a commission whose request may be gone; or
 * (`carry`) carries a vendor's report along its chain (`continueDeployment`).
 */
export type OperationMessage = { opRef: string } | { recover: RecoveryRequest } | { carry: DeploymentCarry };

/**
 * The message `body` is, if it is one of the variants above; null if no run could ever read it (a
 * carry naming no term, no variant at all): retried, or sent again, it would fail the same way.
 */
export function operationMessage(body: unknown): OperationMessage | null {
  if (typeof body !== "object" || body === null) return null;
  if ("opRef" in body) return typeof body.opRef === "string" ? { opRef: body.opRef } : null;
  if ("recover" in body) return isRecovery(body.recover) ? { recover: body.recover } : null;
  if ("carry" in body) return isCarry(body.carry) ? { carry: body.carry } : null;
  return null;
}

const isRecovery = (value: unknown): value is RecoveryRequest =>
  typeof value === "object" &&
  value !== null &&
  "home" in value &&
  typeof value.home === "string" &&
  "serial" in value &&
  typeof value.serial === "number";

const isCarry = (value: unknown): value is DeploymentCarry =>
  typeof value === "object" &&
  value !== null &&
  "from" in value &&
  typeof value.from === "string" &&
  "status" in value &&
  (DEPLOYMENT_STATUSES as readonly unknown[]).includes(value.status) &&
  (!("next" in value) || value.next === undefined || typeof value.next === "string");

export const operationsQueue = (env: Env) => env.OPERATIONS as Queue<OperationMessage>;
