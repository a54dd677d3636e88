/**
 * A small per-isolate cache of rows that rarely change (credentials, services, the catalog), so a
 * request does not read them from D1 every time. Misses are not remembered: something created a
 * moment later is found at once. Bounded: the oldest entry goes first.
 */
export function ttlCache<V>(ttlMs: number, limit = 10_000) {
  const entries = new Map<string, { value: V; until: number }>();
  // Bumped by every forget: a load that began before one may have read what was forgotten (a
  // credential revoked while its lookup was on its way), so it is not remembered. Forgets are rare.
  let forgets = 0;
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
    const before = forgets;
    const value = await load();
    if (value !== undefined && forgets === before) remember(key, value);
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
      const before = forgets;
      for (const [key, value] of await load(missing)) {
        if (forgets === before) remember(key, value);
        found.set(key, value);
      }
    }
    return found;
  };
  /** Drops what is kept for `key`: the next call loads it again. */
  const forget = (key: string) => {
    forgets++;
    entries.delete(key);
  };
  /** Drops every entry whose value matches: a rare, whole-cache sweep (an operator's change). */
  const forgetWhere = (matches: (value: V) => boolean) => {
    forgets++;
    for (const [key, hit] of entries) if (matches(hit.value)) entries.delete(key);
  };
  return Object.assign(one, { many, forget, forgetWhere });
}
