/**
 * Fault injection for the reliability tests. `fault(step)` throws once for each time a test has
 * armed `step`, and otherwise does nothing: production never arms a step, so there it is one map
 * lookup. The steps are the points where a crash would leave work half-done; the tests arm each
 * in turn and check that, after recovery, the books balance. Armed steps live on `globalThis`,
 * which the Worker, its Durable Objects and the tests share in the test isolate.
 */
export const FAULT_STEPS = [
  /** A purchase's commission holds its quota; nothing else is written yet. */
  "purchase.issued",
  /**
   * Its subscriptions exist; no order yet, but for a purchase of one subscription that takes
   * effect at once, whose order was written completed with it.
   */
  "purchase.created",
  /** Its orders are written completed (an operation's, pending); the commission is not accepted yet. */
  "purchase.ordered",
  /** Accepted; the answer is not sent yet. */
  "purchase.accepted",
  /** A purchase being settled (its vendor delivered, the sweep found it took effect) is accepted; its orders are not completed yet. */
  "purchase.settled",
  /** A purchase being undone is rejected; its subscriptions are not failed, its orders not written failed. */
  "purchase.rejected",
  /**
   * A subscription committed a change; nothing of it is pushed yet (read model, usage lines,
   * events). Thrown, it skips the push, as an instance that dies there does.
   */
  "subscription.committed",
  /** A subscription recorded the quota move its change needs; the ledger has not moved yet. */
  "subscription.step",
  /** The ledger moved the quota; the subscription has not committed the change yet. */
  "subscription.moved",
  /** A subscription is about to ask its ledger how a quota step it left open ended. */
  "subscription.asked",
  /** An operation is marked running; its work has not started. */
  "operation.started",
  /** An operation's work is done; its result is not stored yet. */
  "operation.performed",
  /** A renewal reserved its place in the chain; the extension is not bought yet. */
  "renewal.planned",
  /** A keyed write did all its work; its answer is neither kept with the key nor sent. */
  "request.answered",
] as const;

export type FaultStep = (typeof FAULT_STEPS)[number];

/** What an armed step throws: a failure that is no answer, as a crash or a lost connection is. */
export class InjectedFault extends Error {
  constructor(readonly step: FaultStep) {
    super(`injected fault at ${step}`);
    this.name = "InjectedFault";
  }
}

interface FaultRegistry {
  __stratusFaults?: Map<FaultStep, number>;
}

const armed = (): Map<FaultStep, number> => {
  const registry = globalThis as FaultRegistry;
  registry.__stratusFaults ??= new Map();
  return registry.__stratusFaults;
};

export function fault(step: FaultStep): void {
  const faults = (globalThis as FaultRegistry).__stratusFaults;
  const left = faults?.get(step);
  if (!faults || !left) return;
  if (left === 1) faults.delete(step);
  else faults.set(step, left - 1);
  throw new InjectedFault(step);
}

/** Test-only: makes the next `times` passes through `step` throw. */
export function armFault(step: FaultStep, times = 1): void {
  armed().set(step, times);
}

/** Test-only: disarms every step. */
export function disarmFaults(): void {
  armed().clear();
}
