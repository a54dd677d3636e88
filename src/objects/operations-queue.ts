import type { DeploymentStatus } from "../domain/webhooks";

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

export const operationsQueue = (env: Env) => env.OPERATIONS as Queue<OperationMessage>;
