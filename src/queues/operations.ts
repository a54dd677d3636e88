import { continueDeployment } from "../app/deployment";
import { giveUpOperation, MAX_ATTEMPTS, runOperation } from "../app/operations";
import { recoverCommission } from "../app/recovery";
import { logError } from "../domain/log";
import { backoff } from "../domain/retry";
import { type OperationMessage, operationsQueue } from "../objects/operations-queue";
import { OperationsQueueMessage } from "../schemas/queue-messages";
import { readOrAck } from "./readable";

/** The longest wait, in seconds, between two tries of a message that keeps failing. */
const LONGEST_WAIT = 300;

/**
 * The operations queue consumer. Each message names an operation, a commission for the
 * recovery sweep to settle, or a vendor's report to carry along its chain; all are idempotent, so a redelivery, or a consumer that died
 * half-way, completes the work exactly once. A message no run can read (`OperationsQueueMessage`) is
 * acked with its line (`readOrAck`): retried or sent again, it would fail the same way, for good.
 */
export async function consumeOperations(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  await Promise.all(
    batch.messages.map(async (message) => {
      const body: OperationMessage | null = readOrAck(
        message,
        OperationsQueueMessage,
        "operation.unreadable",
      );
      if (!body) return;
      try {
        if ("recover" in body) await recoverCommission(env, body.recover);
        else if ("carry" in body) await continueDeployment(env, body.carry);
        else await runOperation(env, body.opRef);
        message.ack();
      } catch (error) {
        const about =
          "recover" in body
            ? { recover: body.recover }
            : "carry" in body
              ? { carry: body.carry }
              : { opRef: body.opRef };
        logError("operation.retrying", error, { ...about, attempts: message.attempts });
        if (message.attempts < MAX_ATTEMPTS) {
          message.retry({ delaySeconds: backoff(1, LONGEST_WAIT, message.attempts) });
          return;
        }
        try {
          // A recovery out of attempts is asked again by its ledger's next sweep. A carry is sent
          // again, a new message whose attempts start over: its push has landed, so nothing else
          // would send it, and the terms it had not reached would keep their status (the chain's
          // last renewed, and charged, for an application its vendor undeployed).
          if ("opRef" in body) await giveUpOperation(env, body.opRef);
          else if ("carry" in body) await operationsQueue(env).send(body, { delaySeconds: LONGEST_WAIT });
          message.ack();
        } catch (failed) {
          // Thrown, it would fail the batch: this message delivered again at once, with no wait,
          // until `max_retries` drops it (a carry then lost), its batch-mates retried with it.
          logError("operation.retrying", failed, { ...about, attempts: message.attempts });
          message.retry({ delaySeconds: LONGEST_WAIT });
        }
      }
    }),
  );
}
