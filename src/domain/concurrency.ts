/**
 * Runs `work` on every item with at most `limit` of them in flight at once, each starting as soon
 * as another finishes (no waiting for a whole group). Resolves once all have settled; `work` handles
 * its own failures, so one item's failure never stops the others.
 */
export async function eachWithin<T>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await work(item);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, lane));
}
