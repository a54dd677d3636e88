import { attemptDelivery, type WebhookMessage } from "../app/webhooks";
import { logError } from "../domain/log";
import type { Env } from "../env";

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
        logError("webhook.retrying", error, {
          deliveryId: message.body.deliveryId,
          attempts: message.attempts,
        });
        message.retry({ delaySeconds: 30 });
      }
    }),
  );
}
