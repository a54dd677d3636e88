/**
 * References of a cloud's start, stop and resize: each is applied once however often its work
 * runs, and the last one accepted decides (README, "Asynchronous operations").
 */
import { AppError } from "./errors";

/**
 * A start, stop or resize as applied work: `ref`, a UUIDv7 made when it was accepted, and
 * whether the request that accepted it is the one applying it now (`fresh`).
 */
export interface WorkRef {
  ref?: string | undefined;
  fresh?: boolean;
}

/**
 * Whether work `w` is not to be applied to a cloud that recently applied `applied` (`ranBy`,
 * `resizedBy`): applied already (a keyed retry, a redelivered operation), or overtaken by work of
 * its kind accepted after it, whose reference sorts after its own, so the last one accepted
 * decides. Fresh work is the last accepted whatever the clocks that made the references say: it
 * is checked for being applied only.
 */
export function superseded(applied: readonly string[] | undefined, w: WorkRef): boolean {
  const { ref } = w;
  if (ref === undefined || applied === undefined) return false;
  return w.fresh ? applied.includes(ref) : applied.some((other) => other >= ref);
}

/** Whether work `w` was given up (`givenUpBy`) before it applied: run late, it must not apply. */
export const givenUp = (givenUpBy: readonly string[] | undefined, w: WorkRef): boolean =>
  w.ref !== undefined && givenUpBy?.includes(w.ref) === true;

/** `applied` with `w`'s reference: the recent ones only, as a retry comes within minutes, not after this many others. */
export const appliedWith = (applied: string[] | undefined, w: WorkRef): string[] | undefined =>
  w.ref === undefined ? applied : [...(applied ?? []), w.ref].slice(-32);

/** 409: work run after its operation was given up (it answered that the work did not take effect). */
export const workGivenUp = () =>
  new AppError("conflict", "this operation was given up before it took effect: it changes nothing now");
