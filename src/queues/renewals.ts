import { type RenewalMessage, type RenewalOutcome, renewOrExpire } from "../app/renewals";
import { closeMonthOf, isMonthClose, type MonthCloseMessage } from "../app/usage";

/**
 * The renewals queue consumer: each message renews or expires one subscription, or closes a month
 * of one running cloud, and says how it went.
 */
export async function consumeRenewals(
  batch: MessageBatch<RenewalMessage | MonthCloseMessage>,
  env: Env,
): Promise<void> {
  const counts: Record<RenewalOutcome | "retried" | "monthsClosed", number> = {
    renewed: 0,
    expired: 0,
    failed: 0,
    skipped: 0,
    retried: 0,
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
        console.error("renewal failed; retrying", body.subscription, error);
        counts.retried++;
        message.retry({ delaySeconds: 30 });
      }
    }),
  );
  console.log(JSON.stringify({ renewals: counts }));
}
