/**
 * Quota arithmetic of the Astakos commission model, free of I/O.
 *
 * A holding keeps `usageMin` (what is certain to be used) and `usageMax` (what may be used once
 * every pending commission is accepted). Issuing widens the window towards the side the quantity
 * moves; accepting or rejecting narrows it again. Because acceptance and rejection only ever
 * narrow the window, they can never fail, whatever happened to the limit in between.
 */

export interface Holding {
  limit: number;
  usageMin: number;
  usageMax: number;
}

export type IssueFailure =
  | { name: "NoCapacityError"; limit: number; usage: number }
  | { name: "NoQuantityError"; limit: number; usage: number };

export type IssueResult = { ok: true; holding: Holding } | { ok: false; failure: IssueFailure };

/** Reported usage is the pessimistic one: everything issued counts until it is rejected. */
export function reportedUsage(h: Holding): number {
  return h.usageMax;
}

export function pendingQuantity(h: Holding): number {
  return h.usageMax - h.usageMin;
}

export function issue(h: Holding, quantity: number, force: boolean): IssueResult {
  if (quantity >= 0) {
    const usageMax = h.usageMax + quantity;
    // `force` waives the limit, never the safe-integer range the arithmetic depends on.
    const overLimit = !force && usageMax > h.limit;
    if (overLimit || !Number.isSafeInteger(usageMax)) {
      return { ok: false, failure: { name: "NoCapacityError", limit: h.limit, usage: h.usageMax } };
    }
    return { ok: true, holding: { ...h, usageMax } };
  }
  const usageMin = h.usageMin + quantity;
  if (usageMin < 0) {
    // As Astakos answers a release past what is held: the floor it hit (0) and what is certainly
    // used (usage_min), the numbers the refusal is about, not the limit and usage_max.
    return { ok: false, failure: { name: "NoQuantityError", limit: 0, usage: h.usageMin } };
  }
  return { ok: true, holding: { ...h, usageMin } };
}

export function accept(h: Holding, quantity: number): Holding {
  return quantity >= 0
    ? { ...h, usageMin: h.usageMin + quantity }
    : { ...h, usageMax: h.usageMax + quantity };
}

export function reject(h: Holding, quantity: number): Holding {
  return quantity >= 0
    ? { ...h, usageMax: h.usageMax - quantity }
    : { ...h, usageMin: h.usageMin - quantity };
}

export interface ProvisionKey {
  holder: string;
  source: string;
  resource: string;
}

export interface Provision extends ProvisionKey {
  quantity: number;
}

/** Holders one `?user=a,b` (or `?project=a,b`) of the quota API may list: each costs a ledger read. */
export const MAX_LISTED_HOLDERS = 100;

/**
 * Holders (customers, and projects for `service_project_quotas`) one unfiltered `service_quotas`
 * or `service_project_quotas` reads. Each is a ledger call, and so is each project its members
 * draw on: past a few thousand, one invocation would run out of the subrequests it may make
 * (docs/SCALING.md) and fail half-way. A partner with more is read a `?user=` list at a time.
 */
export const MAX_SERVICE_HOLDERS = 2000;

/** Provisions one commission may list (before those of one holding are merged). */
export const MAX_PROVISIONS = 1000;

/**
 * Sums provisions that name the same holding, keeping first-seen order, as Astakos does before
 * it checks any limit. Returns null when a sum leaves the safe-integer range. Summed exactly, as
 * Python's integers do: only the total counts, not a partial sum on the way (+1, +2^53−1, −2).
 */
export function mergeProvisions<P extends Omit<Provision, "source"> & { source: string | null }>(
  provisions: readonly P[],
): P[] | null {
  const merged = new Map<string, { first: P; sum: bigint }>();
  for (const p of provisions) {
    const key = JSON.stringify([p.holder, p.source, p.resource]);
    const seen = merged.get(key);
    if (seen) seen.sum += BigInt(p.quantity);
    else merged.set(key, { first: p, sum: BigInt(p.quantity) });
  }
  const out: P[] = [];
  for (const { first, sum } of merged.values()) {
    const quantity = Number(sum);
    if (!Number.isSafeInteger(quantity) || BigInt(quantity) !== sum) return null;
    out.push({ ...first, quantity });
  }
  return out;
}

/** Groups provisions by holder, holders in a fixed (sorted) order so every writer locks alike. */
export function groupByHolder(provisions: readonly Provision[]): Array<[string, Provision[]]> {
  const groups = new Map<string, Provision[]>();
  for (const p of provisions) {
    const list = groups.get(p.holder);
    if (list) list.push(p);
    else groups.set(p.holder, [p]);
  }
  return [...groups.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}
