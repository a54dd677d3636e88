/**
 * A small per-isolate cache of rows that rarely change (credentials, services, the catalog), so a
 * request does not read them from D1 every time. Misses are not remembered: something created a
 * moment later is found at once. Bounded: the oldest entry goes first.
 */
export function ttlCache<V>(ttlMs: number, limit = 10_000) {
  const entries = new Map<string, { value: V; until: number }>();
  return async (key: string, load: () => Promise<V | undefined>): Promise<V | undefined> => {
    const hit = entries.get(key);
    if (hit && hit.until > Date.now()) return hit.value;
    const value = await load();
    if (value === undefined) return undefined;
    if (entries.size >= limit) entries.delete(entries.keys().next().value as string);
    entries.set(key, { value, until: Date.now() + ttlMs });
    return value;
  };
}
