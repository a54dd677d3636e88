import { metered } from "./app/metered";
import {
  abandonOverduePurchases,
  GIVE_UPS_SHARE,
  OVERDUE_SHARE,
  requeueStalledOperations,
} from "./app/operations";
import { forgetExpiredDeliveries, resendOverdueDeliveries } from "./app/webhooks";
import { closeUsageMonth } from "./cron/months";
import { scheduleRenewals } from "./cron/renewals";
import { deleteExpiredConsumptionQueues } from "./db/consumption-queues";
import { deleteExpiredKeys } from "./db/idempotency";
import { deleteExpiredOperations } from "./db/operations";
import { allowance } from "./domain/budget";
import { logError, logEvent } from "./domain/log";
import { createApp } from "./http/app";
import { routes } from "./http/routes";
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
    await consumeWebhooks(batch, env);
    return {};
  }
  if (batch.queue.startsWith("stratus-renewals")) {
    return consumeRenewals(batch, env);
  }
  await consumeOperations(batch, env);
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
  async scheduled(controller, bindings) {
    const started = Date.now();
    // One invocation runs every step, within one invocation's D1 queries and subrequests: the
    // steps whose units cost what their data says (an undo, a give-up) stop at their share and
    // leave the rest to the next run; the others are bounded on their own (README, "Bounds").
    const { env, spent } = metered(bindings);
    const now = new Date(controller.scheduledTime);
    const run = { cron: controller.cron, scheduledTime: now.toISOString() };
    // Each step on its own: one that keeps failing (an overdue purchase whose undo throws) must not
    // starve the others, which would otherwise stop at it on every run.
    const steps = {
      renewalsEnqueued: () => scheduleRenewals(env, now),
      overduePurchasesAbandoned: () => abandonOverduePurchases(env, now, allowance(spent, OVERDUE_SHARE)),
      stalledOperations: () => requeueStalledOperations(env, now, allowance(spent, GIVE_UPS_SHARE)),
      expiredOperationsDeleted: () => deleteExpiredOperations(env, now),
      expiredConsumptionQueuesDeleted: () => deleteExpiredConsumptionQueues(env, now),
      expiredKeysDeleted: () => deleteExpiredKeys(env, now),
      expiredDeliveriesDeleted: () => forgetExpiredDeliveries(env, now),
      usageMonth: () => closeUsageMonth(env, now),
      webhooksResent: () => resendOverdueDeliveries(env, now),
    };
    const done: Record<string, unknown> = {};
    const failed: string[] = [];
    for (const [step, work] of Object.entries(steps)) {
      try {
        done[step] = await work();
      } catch (error) {
        failed.push(step);
        logError("cron.failed", error, { ...run, step, durationMs: Date.now() - started });
      }
    }
    logEvent("cron", { ...run, durationMs: Date.now() - started, ...done, ...spent, failed });
    if (failed.length > 0) throw new Error(`cron steps failed: ${failed.join(", ")}`);
  },
} satisfies ExportedHandler<Env>;
