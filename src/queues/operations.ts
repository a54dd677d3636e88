import { continueDeployment } from "../app/deployment";
import { giveUpOperation, MAX_ATTEMPTS, runOperation } from "../app/operations";
import { recoverCommission } from "../app/recovery";
import { logError } from "../domain/log";
import { backoff } from "../domain/retry";
import type { OperationMessage } from "../objects/operations-queue";

/**
 * The operations queue consumer. Each message names an operation, a commission for the
 * recovery sweep to settle, or a vendor's report to carry along its chain; all are idempotent, so a redelivery, or a consumer that died
 * half-way, completes the work exactly once.
 */
export async function consumeOperations(batch: MessageBatch<OperationMessage>, env: Env): Promise<void> {
  await Promise.all(
    batch.messages.map(async (message) => {
      const body = message.body;
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
        if (message.attempts >= MAX_ATTEMPTS) {
          // A recovery out of attempts is asked again by its ledger's next sweep. A carry is
          // dropped: the terms it had not reached keep their status until the vendor's next report
          // on the chain (its push has landed, so nothing sends it again).
          if ("opRef" in body) await giveUpOperation(env, body.opRef);
          message.ack();
        } else {
          message.retry({ delaySeconds: backoff(1, 300, message.attempts) });
        }
      }
    }),
  );
}
