import { chainWindows } from "../db/subscriptions";
import { MAX_LISTED_DESCENDANTS, type SubscriptionRecord } from "../domain/subscriptions";

/**
 * The `descendants` of each row of a plain list page: the first `MAX_LISTED_DESCENDANTS` terms
 * after it in its chain. A row nothing follows names none and costs nothing. The followed rows of
 * one chain are answered from a window read from the earliest of them, enough for all of them when
 * they are consecutive terms (the usual page of a chain's terms); a row the window did not reach
 * is answered by a window of its own in the next round. Each round reads every chain's window in
 * one statement (`chainWindows`), so a page reads its rows' terms and `MAX_LISTED_DESCENDANTS` more
 * per chain, not every chain whole.
 */
export async function listedDescendants(
  env: Env,
  records: readonly SubscriptionRecord[],
): Promise<Map<string, string[]>> {
  const byChain = new Map<string, SubscriptionRecord[]>();
  for (const r of records) {
    if (r.nextId === null) continue;
    const chain = byChain.get(r.rootId);
    if (chain) chain.push(r);
    else byChain.set(r.rootId, [r]);
  }
  const out = new Map<string, string[]>();
  let pending = [...byChain.values()].map((rows) => rows.sort(inChainOrder));
  while (pending.length > 0) {
    const windows = pending.map((rows) => ({
      rootId: (rows[0] as SubscriptionRecord).rootId,
      from: rows[0] as SubscriptionRecord,
      limit: rows.length + MAX_LISTED_DESCENDANTS,
    }));
    const read = await chainWindows(env, windows);
    pending = pending
      .map((rows, n) => {
        const after = read[n] ?? [];
        // Fewer than asked: the window reaches the chain's end, and every row in it has its due.
        const toEnd = after.length < (windows[n]?.limit ?? 0);
        const [from, ...others] = rows as [SubscriptionRecord, ...SubscriptionRecord[]];
        out.set(from.id, after.slice(0, MAX_LISTED_DESCENDANTS));
        return others.filter((r) => {
          const at = after.indexOf(r.id);
          if (at === -1 || (!toEnd && at + MAX_LISTED_DESCENDANTS >= after.length)) return true;
          out.set(r.id, after.slice(at + 1, at + 1 + MAX_LISTED_DESCENDANTS));
          return false;
        });
      })
      .filter((rows) => rows.length > 0);
  }
  return out;
}

/** `chainMembers`' order: start time, then id. */
function inChainOrder(a: SubscriptionRecord, b: SubscriptionRecord): number {
  if (a.startTime !== b.startTime) return a.startTime < b.startTime ? -1 : 1;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}
