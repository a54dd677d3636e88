/** The operations queue: what is sent to it, typed (the generated Env types every queue `Queue<unknown>`). */

/** A recovery message: the home ledger and serial of a commission whose request may be gone. */
export interface RecoveryRequest {
  home: string;
  serial: number;
}

/** Runs operation `opRef`; or (`recover`) settles a commission whose request may be gone. */
export type OperationMessage = { opRef: string } | { recover: RecoveryRequest };

export const operationsQueue = (env: Env) => env.OPERATIONS as Queue<OperationMessage>;
