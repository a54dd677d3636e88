import { type Customer, findCustomer, partnerCustomerIds } from "../db/customers";
import type { Env } from "../env";
import type { Principal } from "../http/auth";
import { notFound } from "../http/errors";
import { ttlCache } from "../http/ttl-cache";

/** Operators see every customer; anyone else only their partner's, and others' do not exist. */
export async function visibleCustomer(env: Env, principal: Principal, id: string): Promise<Customer> {
  const customer = await findCustomer(env, id, principal.role === "operator" ? null : principal.partnerId);
  if (!customer) throw notFound(`customer ${id} does not exist`);
  return customer;
}

/**
 * Customers known to belong to a partner, by `partner/customer`. A customer never changes partner
 * and is never deleted, so what was found stays true; what was not is asked again next time.
 */
const knownCustomers = ttlCache<true>(600_000);

/** Which of `ids` are customers of `partnerId`. */
export async function ownCustomers(
  env: Env,
  partnerId: string,
  ids: readonly string[],
): Promise<Set<string>> {
  const key = (id: string) => `${partnerId}/${id}`;
  const found = await knownCustomers.many(ids.map(key), async (missing) => {
    const prefix = key("").length;
    const own = await partnerCustomerIds(
      env,
      partnerId,
      missing.map((k) => k.slice(prefix)),
    );
    return new Map([...own].map((id) => [key(id), true as const]));
  });
  return new Set(ids.filter((id) => found.has(key(id))));
}
