/**
 * A small per-isolate cache of rows that rarely change (credentials, services, the catalog), so a
 * request does not read them from D1 every time. Misses are not remembered: something created a
 * moment later is found at once. Bounded: the oldest entry goes first.
 */
export function ttlCache<V>(ttlMs: number, limit = 10_000) {
  const entries = new Map<string, { value: V; until: number }>();
  const fresh = (key: string): V | undefined => {
    const hit = entries.get(key);
    return hit && hit.until > Date.now() ? hit.value : undefined;
  };
  const remember = (key: string, value: V) => {
    if (entries.size >= limit) entries.delete(entries.keys().next().value as string);
    entries.set(key, { value, until: Date.now() + ttlMs });
  };
  const one = async (key: string, load: () => Promise<V | undefined>): Promise<V | undefined> => {
    const hit = fresh(key);
    if (hit !== undefined) return hit;
    const value = await load();
    if (value !== undefined) remember(key, value);
    return value;
  };
  /** Several keys at once: the ones not cached are loaded together, by one call of `load`. */
  const many = async (
    keys: readonly string[],
    load: (missing: string[]) => Promise<Map<string, V>>,
  ): Promise<Map<string, V>> => {
    const found = new Map<string, V>();
    const missing: string[] = [];
    for (const key of keys) {
      const hit = fresh(key);
      if (hit === undefined) missing.push(key);
      else found.set(key, hit);
    }
    if (missing.length > 0) {
      for (const [key, value] of await load(missing)) {
        remember(key, value);
        found.set(key, value);
      }
    }
    return found;
  };
  /** Drops what is kept for `key`: the next call loads it again. */
  const forget = (key: string) => {
    entries.delete(key);
  };
  /** Drops every entry whose value matches: a rare, whole-cache sweep (an operator's change). */
  const forgetWhere = (matches: (value: V) => boolean) => {
    for (const [key, hit] of entries) if (matches(hit.value)) entries.delete(key);
  };
  return Object.assign(one, { many, forget, forgetWhere });
}
