import { fanOut } from "../app/fan-out";
import { isFanOut, type RenewalOutcome, type RenewalsMessage, renewOrExpire } from "../app/renewals";
import { closeMonthOf, isMonthClose } from "../app/usage";
import { eachWithin } from "../domain/concurrency";
import { logError } from "../domain/log";
import { RenewalsQueueMessage } from "../schemas/queue-messages";
import { readOrAck } from "./readable";

/**
 * How many of a batch's messages are worked on at once. Each renewal is a chain of awaited calls
 * (its object, the customer's ledger, the new term's object, D1), so one at a time leaves the
 * invocation idle; all of a batch at once queues them behind one another on the same ledger and
 * on D1, and makes the batch as slow as its slowest. Measured in bench/RESULTS.md (2026-12-01,
 * night); docs/SCALING.md says how this multiplies with Cloudflare's concurrent consumers.
 */
export const RENEWALS_AT_ONCE = 16;

/**
 * The renewals queue consumer: each message renews or expires one subscription, closes a month of
 * one running cloud, or carries on a cron run's paging (`fanOut`), and is acked or retried on its
 * own; one no run can read (`RenewalsQueueMessage`) is acked with its line (`readOrAck`). Answers how
 * they went, for the batch's log line (retries are counted there).
 */
export async function consumeRenewals(
  batch: MessageBatch<unknown>,
  env: Env,
): Promise<Record<RenewalOutcome | "monthsClosed" | "fannedOut", number>> {
  const counts: Record<RenewalOutcome | "monthsClosed" | "fannedOut", number> = {
    renewed: 0,
    expired: 0,
    failed: 0,
    skipped: 0,
    monthsClosed: 0,
    fannedOut: 0,
  };
  await eachWithin(batch.messages, RENEWALS_AT_ONCE, async (message) => {
    const body: RenewalsMessage | null = readOrAck(message, RenewalsQueueMessage, "renewal.unreadable");
    if (!body) return;
    try {
      if (isFanOut(body)) {
        counts.fannedOut += await fanOut(env, body.fanOut);
      } else if (isMonthClose(body)) {
        counts[(await closeMonthOf(env, body)) === "closed" ? "monthsClosed" : "skipped"]++;
      } else {
        counts[await renewOrExpire(env, body.subscription, new Date(body.at), body.catchUp === true)]++;
      }
      message.ack();
    } catch (error) {
      const subject = isFanOut(body) ? { fanOut: body.fanOut } : { subscription: body.subscription };
      logError("renewal.retrying", error, { ...subject, attempts: message.attempts });
      message.retry({ delaySeconds: 30 });
    }
  });
  return counts;
}
