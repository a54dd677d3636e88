/**
 * The recovery bound: how long stratus's own commission may stay pending, and an operation go
 * without progress, before the recovery sweep takes it for abandoned (settles the commission by
 * what happened, queues the operation again). A request takes well under a second and a queued
 * operation waits at most 300 s between attempts, so the default of 600 s only ever catches work
 * whose request or message is gone. `RECOVERY_AFTER_SECONDS` sets it (`npm run soak` uses a few
 * seconds, where a slow attempt may then run beside its recovery: both are idempotent).
 */
export const DEFAULT_RECOVERY_SECONDS = 600;

export function recoveryBoundMs(vars: { RECOVERY_AFTER_SECONDS?: string | undefined }): number {
  const seconds = Number(vars.RECOVERY_AFTER_SECONDS ?? DEFAULT_RECOVERY_SECONDS);
  return (Number.isFinite(seconds) && seconds > 0 ? seconds : DEFAULT_RECOVERY_SECONDS) * 1000;
}
