import * as v from "valibot";
import { logError } from "../domain/log";

/**
 * The body of `message` as its queue's schema reads it (src/schemas/queue-messages.ts); null, the
 * message acked with an `event` line naming it, when no run could ever read it (a broken or older
 * producer's). Retried, it would fail the same way on every attempt; one that is not an object
 * would throw out of its consumer and fail its good batch-mates with it.
 */
export function readOrAck<S extends v.GenericSchema>(
  message: Message<unknown>,
  schema: S,
  event: string,
): v.InferOutput<S> | null {
  const read = v.safeParse(schema, message.body);
  if (read.success) return read.output;
  logError(event, "no message a run can read", { body: message.body, attempts: message.attempts });
  message.ack();
  return null;
}
