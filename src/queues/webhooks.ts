import { attemptDelivery } from "../app/webhooks";
import { logError } from "../domain/log";
import { type WebhookMessage, webhooksQueue } from "../objects/webhook-events";
import { WebhooksQueueMessage } from "../schemas/queue-messages";
import { readOrAck } from "./readable";

/**
 * The webhooks queue consumer. Every message is attempted on its own, concurrently, and waits on
 * its own schedule: one slow or failing endpoint never holds up another vendor's deliveries. A
 * wait is a fresh message (src/app/webhooks.ts); a message is retried only when the consumer
 * failed, which `max_retries` bounds. One no run can read (`WebhooksQueueMessage`) is acked with its
 * line (`readOrAck`).
 */
export async function consumeWebhooks(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  await Promise.all(
    batch.messages.map(async (message) => {
      const body: WebhookMessage | null = readOrAck(message, WebhooksQueueMessage, "webhook.unreadable");
      if (!body) return;
      try {
        const result = await attemptDelivery(env, body, new Date());
        if (result.outcome === "retry") {
          await webhooksQueue(env).send(
            { deliveryId: body.deliveryId, due: result.due },
            { delaySeconds: result.delaySeconds },
          );
        }
        message.ack();
      } catch (error) {
        logError("webhook.retrying", error, {
          deliveryId: body.deliveryId,
          attempts: message.attempts,
        });
        message.retry({ delaySeconds: 30 });
      }
    }),
  );
}
