import { insertDelivery } from "../db/webhooks";
import type { SubscriptionRecord } from "../domain/subscriptions";
import type { EventType } from "../domain/webhooks";

/**
 * A subscription's events into the webhooks pipeline (spec/syndication-webhooks.md): the delivery
 * row, and its message on the webhooks queue, whose consumer attempts it (src/app/webhooks.ts).
 */

export interface WebhookMessage {
  deliveryId: string;
  /**
   * The `nextAttemptAt` of the delivery this message was sent to attempt; absent for its first
   * attempt (src/app/webhooks.ts: the message whose `due` matches owns the delivery).
   */
  due?: string | null;
}

export const webhooksQueue = (env: Env) => env.WEBHOOKS as Queue<WebhookMessage>;

export interface SubscriptionEvent {
  id: string;
  type: EventType;
  date: string;
  sequence: number;
}

/** The event as the vendor receives it: the spec's fields, plus the subscription's sequence. */
function payloadOf(env: Env, record: SubscriptionRecord, event: SubscriptionEvent): string {
  return JSON.stringify({
    date: event.date.replace(/\.\d{3}Z$/, "Z"),
    entity: "Subscription",
    entityUrl: new URL(`/api/subscription/${record.id}`, env.PUBLIC_URL).toString(),
    id: record.id,
    type: event.type,
    sequence: event.sequence,
  });
}

/** Hands a subscription's event to the webhooks pipeline; repeating it for the same event changes nothing. */
export async function dispatchEvent(
  env: Env,
  record: SubscriptionRecord,
  event: SubscriptionEvent,
): Promise<void> {
  if (!record.vendorId) return;
  await insertDelivery(env, {
    id: event.id,
    vendorId: record.vendorId,
    product: record.product,
    subscriptionId: record.id,
    type: event.type,
    sequence: event.sequence,
    payload: payloadOf(env, record, event),
    status: "pending",
    createdAt: event.date,
  });
  await webhooksQueue(env).send({ deliveryId: event.id });
}
