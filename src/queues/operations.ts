import { giveUpOperation, type OperationMessage, runOperation } from "../app/operations";
import type { Env } from "../env";

/** Attempts before an operation is given up as failed (the queue's max_retries is above this). */
export const MAX_ATTEMPTS = 8;

const backoffSeconds = (attempts: number) => Math.min(300, 2 ** attempts);

/**
 * The operations queue consumer. Each message names an operation; running it is idempotent, so
 * a redelivery, or a consumer that died half-way, completes the work exactly once.
 */
export async function consumeOperations(batch: MessageBatch<OperationMessage>, env: Env): Promise<void> {
  await Promise.all(
    batch.messages.map(async (message) => {
      try {
        await runOperation(env, message.body.opRef);
        message.ack();
      } catch (error) {
        console.error("operation failed; retrying", message.body.opRef, message.attempts, error);
        if (message.attempts >= MAX_ATTEMPTS) {
          await giveUpOperation(env, message.body.opRef);
          message.ack();
        } else {
          message.retry({ delaySeconds: backoffSeconds(message.attempts) });
        }
      }
    }),
  );
}
