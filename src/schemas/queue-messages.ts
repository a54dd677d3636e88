import * as v from "valibot";
import { DEPLOYMENT_STATUSES } from "../domain/webhooks";

/**
 * The bodies of stratus's own queues, as their consumers read them. A producer of an older or
 * broken version may have sent anything: a body none of these reads is one no run could ever
 * handle, and its consumer acks it with a line (src/queues/readable.ts) instead of failing its batch.
 */

/** An instant a run computes with: a string `Date.parse` reads. */
const Instant = v.pipe(
  v.string(),
  v.check((text) => !Number.isNaN(Date.parse(text))),
);

/** The operations queue: an operation to run, a commission to recover, a vendor's report to carry. */
export const OperationsQueueMessage = v.union([
  v.object({ opRef: v.string() }),
  v.object({ recover: v.object({ home: v.string(), serial: v.number() }) }),
  v.object({
    carry: v.object({
      from: v.string(),
      status: v.picklist(DEPLOYMENT_STATUSES),
      next: v.optional(v.string()),
    }),
  }),
]);

/** The renewals queue: a page of a cron run to carry on, a month to close, a term to renew or expire. */
export const RenewalsQueueMessage = v.union([
  v.object({
    fanOut: v.variant("kind", [
      v.object({
        kind: v.literal("renewals"),
        before: Instant,
        at: Instant,
        after: v.nullable(v.object({ endTime: v.string(), id: v.string() })),
      }),
      v.object({
        kind: v.literal("monthClose"),
        boundary: Instant,
        after: v.nullable(v.object({ runningSince: v.number(), id: v.string() })),
      }),
    ]),
  }),
  v.object({ subscription: v.string(), closeMonth: Instant }),
  v.object({ subscription: v.string(), at: Instant, catchUp: v.optional(v.literal(true)) }),
]);

/** The webhooks queue: a delivery to attempt, and when its wait was due. */
export const WebhooksQueueMessage = v.object({
  deliveryId: v.string(),
  due: v.optional(v.nullable(v.string())),
});
