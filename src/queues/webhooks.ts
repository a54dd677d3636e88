import { attemptDelivery } from "../app/webhooks";
import { logError } from "../domain/log";
import { type WebhookMessage, webhooksQueue } from "../objects/webhook-events";

/**
 * The webhooks queue consumer. Every message is attempted on its own, concurrently, and waits on
 * its own schedule: one slow or failing endpoint never holds up another vendor's deliveries. A
 * wait is a fresh message (src/app/webhooks.ts); a message is retried only when the consumer
 * failed, which `max_retries` bounds.
 */
export async function consumeWebhooks(batch: MessageBatch<WebhookMessage>, env: Env): Promise<void> {
  await Promise.all(
    batch.messages.map(async (message) => {
      try {
        const result = await attemptDelivery(env, message.body, new Date());
        if (result.outcome === "retry") {
          await webhooksQueue(env).send(
            { deliveryId: message.body.deliveryId, due: result.due },
            { delaySeconds: result.delaySeconds },
          );
        }
        message.ack();
      } catch (error) {
        logError("webhook.retrying", error, {
          deliveryId: message.body.deliveryId,
          attempts: message.attempts,
        });
        message.retry({ delaySeconds: 30 });
      }
    }),
  );
}
