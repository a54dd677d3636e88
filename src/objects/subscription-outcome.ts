import type { ErrorWire } from "../domain/errors";
import type { SubscriptionRecord } from "../domain/subscriptions";

/** What a SubscriptionObject's change answers across RPC: its value, or its error as plain data. */
export type Outcome<T> = { ok: true; value: T } | { ok: false; error: ErrorWire };

/**
 * What `create` answers: the subscription, whether the order it was given landed with it, and
 * then the D1 bookmark of that write (a request answers it: src/http/d1-session.ts).
 */
export interface Created {
  record: SubscriptionRecord;
  ordered: boolean;
  bookmark: string | null;
}

type Refusal = { ok: false; error: ErrorWire };

export const missing = (): Refusal => ({
  ok: false,
  error: { kind: "not_found", message: "subscription does not exist" },
});

/**
 * The precondition of a change made under If-Match: the version the client's tag was compared
 * with, and whether the change is already in effect on a record (then it is answered as done).
 */
export interface Expected {
  version: number | undefined;
  done: (r: SubscriptionRecord) => boolean;
  /**
   * The record a change found already in effect commits (its work's reference noted, so work
   * accepted before it is overtaken, as when it applies); by default, nothing.
   */
  noted?: (r: SubscriptionRecord) => SubscriptionRecord;
}

/** The record moved on from the version the client's If-Match matched. */
export const stale = (): Refusal => ({
  ok: false,
  error: {
    kind: "precondition_failed",
    message: "the subscription changed since the version If-Match names; read it again",
  },
});
