import { abandonOverduePurchases, requeueStalledOperations } from "./app/operations";
import type { RenewalMessage } from "./app/renewals";
import type { MonthCloseMessage } from "./app/usage";
import { resendOverdueDeliveries } from "./app/webhooks";
import { closeUsageMonth } from "./cron/months";
import { scheduleRenewals } from "./cron/renewals";
import { deleteExpiredOperations } from "./db/operations";
import { createApp } from "./http/app";
import { routes } from "./http/routes";
import type { OperationMessage } from "./objects/operations-queue";
import type { WebhookMessage } from "./objects/webhook-events";
import { consumeOperations } from "./queues/operations";
import { consumeRenewals } from "./queues/renewals";
import { consumeWebhooks } from "./queues/webhooks";

export { QuotaLedger } from "./objects/quota-ledger";
export { SubscriptionObject } from "./objects/subscription-object";

const app = createApp(routes);

export default {
  fetch: (request, env, ctx) => app(request, env, ctx),
  async queue(batch, env) {
    if (batch.queue.startsWith("stratus-webhooks")) {
      await consumeWebhooks(batch as MessageBatch<WebhookMessage>, env);
    } else if (batch.queue.startsWith("stratus-renewals")) {
      await consumeRenewals(batch as MessageBatch<RenewalMessage | MonthCloseMessage>, env);
    } else {
      await consumeOperations(batch as MessageBatch<OperationMessage>, env);
    }
  },
  async scheduled(controller, env) {
    const now = new Date(controller.scheduledTime);
    const renewalsEnqueued = await scheduleRenewals(env, now);
    const overduePurchasesAbandoned = await abandonOverduePurchases(env, now);
    const stalledOperations = await requeueStalledOperations(env, now);
    await deleteExpiredOperations(env, now);
    const usageMonth = await closeUsageMonth(env, now);
    const webhooksResent = await resendOverdueDeliveries(env, now);
    console.log(
      JSON.stringify({
        cron: controller.cron,
        renewalsEnqueued,
        overduePurchasesAbandoned,
        stalledOperations,
        usageMonth,
        webhooksResent,
      }),
    );
  },
} satisfies ExportedHandler<Env>;
