import { type RenewalMessage, type RenewalOutcome, renewOrExpire } from "../app/renewals";
import { closeMonthOf, isMonthClose, type MonthCloseMessage } from "../app/usage";
import { logError } from "../domain/log";

/**
 * The renewals queue consumer: each message renews or expires one subscription, or closes a month
 * of one running cloud. Answers how they went, for the batch's log line (retries are counted there).
 */
export async function consumeRenewals(
  batch: MessageBatch<RenewalMessage | MonthCloseMessage>,
  env: Env,
): Promise<Record<RenewalOutcome | "monthsClosed", number>> {
  const counts: Record<RenewalOutcome | "monthsClosed", number> = {
    renewed: 0,
    expired: 0,
    failed: 0,
    skipped: 0,
    monthsClosed: 0,
  };
  await Promise.all(
    batch.messages.map(async (message) => {
      const body = message.body;
      try {
        if (isMonthClose(body)) {
          counts[(await closeMonthOf(env, body)) === "closed" ? "monthsClosed" : "skipped"]++;
        } else {
          counts[await renewOrExpire(env, body.subscription, new Date(body.at))]++;
        }
        message.ack();
      } catch (error) {
        logError("renewal.retrying", error, { subscription: body.subscription, attempts: message.attempts });
        message.retry({ delaySeconds: 30 });
      }
    }),
  );
  return counts;
}
