/**
 * Durable Object ids by namespace and name, kept per isolate. Deriving an id hashes its name
 * (~2.5 µs of workerd's CPU a call, bench/RESULTS.md), and the same names are asked for again and
 * again: a shard on every read of its subscriptions, a holder's ledger on every commission. An id
 * is plain data, not tied to the request that derived it. Bounded per namespace: the oldest goes
 * first.
 */
const ids = new WeakMap<object, Map<string, DurableObjectId>>();

/** As many names as there are shards (domain/ids.ts `shardOf`). */
const MAX_IDS = 65_536;

export function idOf<T extends Rpc.DurableObjectBranded | undefined>(
  namespace: DurableObjectNamespace<T>,
  name: string,
): DurableObjectId {
  let named = ids.get(namespace);
  if (!named) {
    named = new Map();
    ids.set(namespace, named);
  }
  let id = named.get(name);
  if (!id) {
    id = namespace.idFromName(name);
    if (named.size >= MAX_IDS) named.delete(named.keys().next().value as string);
    named.set(name, id);
  }
  return id;
}
