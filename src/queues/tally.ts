/**
 * A batch whose messages count their acks and retries as the consumer makes them, for the batch's
 * log line: the consumers stay as they are, and no outcome goes uncounted.
 */
export function tally<Body>(batch: MessageBatch<Body>) {
  const counts = { acked: 0, retried: 0 };
  const messages = batch.messages.map(
    (message): Message<Body> => ({
      id: message.id,
      timestamp: message.timestamp,
      body: message.body,
      attempts: message.attempts,
      ack() {
        counts.acked++;
        message.ack();
      },
      retry(options) {
        counts.retried++;
        message.retry(options);
      },
    }),
  );
  const counted: MessageBatch<Body> = {
    queue: batch.queue,
    metadata: batch.metadata,
    messages,
    ackAll: () => {
      for (const message of messages) message.ack();
    },
    retryAll: (options) => {
      for (const message of messages) message.retry(options);
    },
  };
  return { batch: counted, counts };
}
