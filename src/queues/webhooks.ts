import { attemptDelivery } from "../app/webhooks";
import type { WebhookMessage } from "../objects/webhook-events";

/**
 * The webhooks queue consumer. Every message is attempted on its own, concurrently, and retried
 * on its own schedule: one slow or failing endpoint never holds up another vendor's deliveries.
 */
export async function consumeWebhooks(batch: MessageBatch<WebhookMessage>, env: Env): Promise<void> {
  await Promise.all(
    batch.messages.map(async (message) => {
      try {
        const result = await attemptDelivery(env, message.body.deliveryId, new Date());
        if (result.outcome === "retry") message.retry({ delaySeconds: result.delaySeconds });
        else message.ack();
      } catch (error) {
        console.error("webhook attempt failed; retrying", message.body.deliveryId, error);
        message.retry({ delaySeconds: 30 });
      }
    }),
  );
}
