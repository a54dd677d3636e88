import { logError } from "../domain/log";

/**
 * The body of `message` as `read` reads it (each queue's reader, beside its message types); null,
 * the message acked with an `event` line naming it, when no run could ever read it (a broken or
 * older producer's). Retried, it would fail the same way on every attempt; one that is not an
 * object would throw out of its consumer and fail its good batch-mates with it.
 */
export function readOrAck<T>(
  message: Message<unknown>,
  read: (body: unknown) => T | null,
  event: string,
): T | null {
  const body = read(message.body);
  if (body === null) {
    logError(event, "no message a run can read", { body: message.body, attempts: message.attempts });
    message.ack();
  }
  return body;
}
