import { type RenewalMessage, type RenewalOutcome, renewOrExpire } from "../app/renewals";
import type { Env } from "../env";

/** The renewals queue consumer: each message renews or expires one subscription, and says how it went. */
export async function consumeRenewals(batch: MessageBatch<RenewalMessage>, env: Env): Promise<void> {
  const counts: Record<RenewalOutcome | "retried", number> = {
    renewed: 0,
    expired: 0,
    failed: 0,
    skipped: 0,
    retried: 0,
  };
  await Promise.all(
    batch.messages.map(async (message) => {
      try {
        counts[await renewOrExpire(env, message.body.subscription, new Date(message.body.at))]++;
        message.ack();
      } catch (error) {
        console.error("renewal failed; retrying", message.body.subscription, error);
        counts.retried++;
        message.retry({ delaySeconds: 30 });
      }
    }),
  );
  console.log(JSON.stringify({ renewals: counts }));
}
