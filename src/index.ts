import { abandonOverduePurchases, requeueStalledOperations } from "./app/operations";
import type { RenewalMessage } from "./app/renewals";
import type { MonthCloseMessage } from "./app/usage";
import { resendOverdueDeliveries } from "./app/webhooks";
import { closeUsageMonth } from "./cron/months";
import { scheduleRenewals } from "./cron/renewals";
import { deleteExpiredOperations } from "./db/operations";
import { logError, logEvent } from "./domain/log";
import { createApp } from "./http/app";
import { routes } from "./http/routes";
import type { OperationMessage } from "./objects/operations-queue";
import type { WebhookMessage } from "./objects/webhook-events";
import { consumeOperations } from "./queues/operations";
import { consumeRenewals } from "./queues/renewals";
import { tally } from "./queues/tally";
import { consumeWebhooks } from "./queues/webhooks";

export { QuotaLedger } from "./objects/quota-ledger";
export { SubscriptionObject } from "./objects/subscription-object";

const app = createApp(routes);

/** Runs one queue batch with its consumer; what the consumer reports goes into the batch's line. */
async function consume(batch: MessageBatch, env: Env): Promise<Record<string, unknown>> {
  if (batch.queue.startsWith("stratus-webhooks")) {
    await consumeWebhooks(batch as MessageBatch<WebhookMessage>, env);
    return {};
  }
  if (batch.queue.startsWith("stratus-renewals")) {
    return consumeRenewals(batch as MessageBatch<RenewalMessage | MonthCloseMessage>, env);
  }
  await consumeOperations(batch as MessageBatch<OperationMessage>, env);
  return {};
}

export default {
  fetch: (request, env, ctx) => app(request, env, ctx),
  async queue(batch, env) {
    const started = Date.now();
    const counted = tally(batch);
    const line = () => ({
      queue: batch.queue,
      messages: batch.messages.length,
      ...counted.counts,
      durationMs: Date.now() - started,
    });
    try {
      const outcomes = await consume(counted.batch, env);
      logEvent("queue", { ...line(), ...outcomes });
    } catch (error) {
      logError("queue.failed", error, line());
      throw error;
    }
  },
  async scheduled(controller, env) {
    const started = Date.now();
    const now = new Date(controller.scheduledTime);
    try {
      const renewalsEnqueued = await scheduleRenewals(env, now);
      const overduePurchasesAbandoned = await abandonOverduePurchases(env, now);
      const stalledOperations = await requeueStalledOperations(env, now);
      await deleteExpiredOperations(env, now);
      const usageMonth = await closeUsageMonth(env, now);
      const webhooksResent = await resendOverdueDeliveries(env, now);
      logEvent("cron", {
        cron: controller.cron,
        scheduledTime: now.toISOString(),
        durationMs: Date.now() - started,
        renewalsEnqueued,
        overduePurchasesAbandoned,
        stalledOperations,
        usageMonth,
        webhooksResent,
      });
    } catch (error) {
      logError("cron.failed", error, {
        cron: controller.cron,
        scheduledTime: now.toISOString(),
        durationMs: Date.now() - started,
      });
      throw error;
    }
  },
} satisfies ExportedHandler<Env>;
