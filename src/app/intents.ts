import type { Product } from "../domain/catalog";
import { uuidv7 } from "../domain/ids";
import type { PurchaseObject } from "../domain/purchase";
import type { PurchaseIds } from "./subscriptions";

/**
 * The work behind every write of the subscriptions API, as data. A request runs it at once, or
 * (with `Prefer: respond-async`) stores it as an operation that the operations queue runs. The
 * payload fixes every choice made when the request was accepted (the time, the ids to create,
 * the value a toggle sets), so running it again after a crash or a redelivery finds what the
 * first run did instead of doing it twice.
 */

/** A product's price as an extension was accepted at: what every run of it charges (`acceptedPrice`). */
export interface AcceptedPrice {
  unitPriceMinor: number;
  currency: string;
}

export type StoredObject = Omit<PurchaseObject, "start_time" | "end_time"> & {
  start_time?: string;
  end_time?: string;
};

/**
 * The work of a partner-API write. `customerId`: the one customer it is for, when it is for one,
 * so that customer's key may read its operation (a consumption report names its `customer`).
 */
export type OperationPayload = { customerId?: string } & (
  | {
      kind: "purchase";
      partnerId: string;
      at: string;
      objects: StoredObject[];
      ids: PurchaseIds;
      /**
       * The vendor of each product bought, when it was accepted: a product whose vendor changed
       * before the purchase ran is not bought (absent: recorded before this was kept).
       */
      vendors?: Record<string, string | null>;
      /**
       * The products bought, as the catalog read when it was accepted: every run plans the same
       * purchase from them (a product's kind decides how many subscriptions, and so which ids, its
       * objects make; its quota resource what the commission holds), whatever the catalog says by
       * then (absent: recorded before this was kept, planned from the catalog of the run).
       */
      products?: Product[];
    }
  | {
      kind: "update";
      partnerId: string;
      at: string;
      subscription: string;
      amount?: number;
      autoRenew?: boolean;
      /** The version the request's If-Match matched: the change applies only to it. */
      expectedVersion?: number;
      /** The resize, applied once however often its work runs (absent: recorded before). */
      ref?: string;
    }
  | {
      kind: "extend";
      partnerId: string;
      at: string;
      subscription: string;
      period?: string;
      endTime?: string;
      ids: { subscription: string; order: string };
      /**
       * The product's price when the extension was accepted: every run charges it, whatever the
       * catalog says by then (absent: recorded before this was kept, priced when it runs).
       */
      price?: AcceptedPrice;
    }
  | {
      kind: "auto_renew";
      partnerId: string;
      at: string;
      subscription: string;
      value: boolean;
      /** The version the request's If-Match matched: the toggle applies only to it. */
      expectedVersion?: number;
      /**
       * A bare toggle's reference, made when it was accepted: it flips the flag once, as the flag
       * stands when it applies (`Subscription.setAutoRenew`). Absent: `value` is set (a value from
       * the body, or a toggle recorded before this was kept).
       */
      toggle?: string;
    }
  | {
      kind: "run";
      partnerId: string;
      at: string;
      subscription: string;
      action: "start" | "stop";
      /** The start or stop, applied once however often its work runs (absent: recorded before). */
      ref?: string;
    }
  | { kind: "cancel"; partnerId: string; at: string; subscription: string; expectedVersion?: number }
  | {
      kind: "consume";
      partnerId: string;
      at: string;
      customer: string;
      product: string;
      amount: number;
      /** The report's id: each subscription remembers what it took for it. */
      report: string;
    }
);

/**
 * What a write under an Idempotency-Key commits to, recorded with its key before any of the work
 * is done: the payload (every choice made: the time, the ids to create) and, for work answered
 * with 202, the operation that runs it. A retry whose first attempt died resumes exactly this.
 */
export interface Intent {
  payload: OperationPayload;
  opRef: string | null;
}

/** Where a request records its intent: the Idempotency-Key's row, when the request has a key. */
export interface Journal {
  record(intent: Intent): Promise<void>;
  /**
   * A choice the request makes once (the id of what it creates, the membership it removes),
   * recorded with the key before anything is done: a retry of a request that died makes the same
   * one, never another.
   */
  choose(make: () => Promise<string>): Promise<Choice>;
}

/** `recalled`: the choice is an earlier attempt's, whose work may be done already. */
export interface Choice {
  value: string;
  recalled: boolean;
}

const journals = new WeakMap<Request, Journal>();

/** Gives `request` a journal for the work it is about to do. */
export function keepJournal(request: Request, journal: Journal): void {
  journals.set(request, journal);
}

export const journalOf = (request: Request): Journal | undefined => journals.get(request);

/** `make`'s value for `request`: recorded with its Idempotency-Key when it has one. */
export async function choiceFor(request: Request, make: () => Promise<string>): Promise<Choice> {
  return (await journalOf(request)?.choose(make)) ?? { value: await make(), recalled: false };
}

/** The id of what `request` creates. */
export async function newIdFor(request: Request): Promise<string> {
  return (await choiceFor(request, async () => uuidv7())).value;
}
