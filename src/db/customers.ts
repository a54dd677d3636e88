import { and, asc, eq, gt, inArray, sql } from "drizzle-orm";
import { ttlCache } from "../domain/ttl-cache";
import { database, pageAndTotal, parameterChunks } from "./client";
import { customers } from "./schema";

export type Customer = typeof customers.$inferSelect;

/** Creates customer `input.id`, or answers it as it is: a resumed request creates it once. */
export async function createCustomer(
  env: Env,
  input: Pick<Customer, "id" | "partnerId" | "name" | "email" | "userName" | "phone" | "address">,
): Promise<Customer> {
  const created = await database(env).insert(customers).values(input).onConflictDoNothing().returning().get();
  const found = created ?? (await findCustomer(env, input.id, input.partnerId));
  if (!found) throw new Error(`customer ${input.id} neither inserted nor found`);
  return found;
}

/** A customer as seen by a partner: another partner's customer does not exist. */
export async function findCustomer(
  env: Env,
  id: string,
  partnerId: string | null,
): Promise<Customer | undefined> {
  const scope =
    partnerId === null ? eq(customers.id, id) : and(eq(customers.id, id), eq(customers.partnerId, partnerId));
  return database(env).select().from(customers).where(scope).get();
}

/** Customers `ids`, whoever's they are (those that exist); any number of ids, a statement per chunk of them. */
export async function findCustomers(env: Env, ids: readonly string[]): Promise<Customer[]> {
  const found: Customer[] = [];
  for (const chunk of parameterChunks(ids, 0)) {
    found.push(...(await database(env).select().from(customers).where(inArray(customers.id, chunk)).all()));
  }
  return found;
}

/** A page of a partner's customers (null: everyone's), in id order, and how many it has (a count on `customers_partner_id`). */
export function listCustomers(
  env: Env,
  partnerId: string | null,
  after: string | undefined,
  offset: number,
  limit: number,
) {
  const whose = partnerId === null ? undefined : eq(customers.partnerId, partnerId);
  const page = database(env)
    .select()
    .from(customers)
    .where(and(whose, after === undefined ? undefined : gt(customers.id, after)))
    .orderBy(asc(customers.id))
    .limit(limit + 1)
    .offset(offset);
  return pageAndTotal(env, page, customers, whose);
}

/** Which of `ids` are a partner's customers; any number of ids, a statement per chunk of them. */
export async function partnerCustomerIds(
  env: Env,
  partnerId: string,
  ids: readonly string[],
): Promise<Set<string>> {
  const found = new Set<string>();
  // Each statement binds the partner and its chunk of ids.
  for (const chunk of parameterChunks(ids, 1)) {
    const rows = await database(env)
      .select({ id: customers.id })
      .from(customers)
      .where(and(eq(customers.partnerId, partnerId), inArray(customers.id, chunk)))
      .all();
    for (const row of rows) found.add(row.id);
  }
  return found;
}

export async function allPartnerCustomerIds(env: Env, partnerId: string): Promise<string[]> {
  const rows = await database(env)
    .select({ id: customers.id })
    .from(customers)
    .where(eq(customers.partnerId, partnerId))
    .orderBy(asc(customers.id))
    .all();
  return rows.map((r) => r.id);
}

/**
 * Updates customer `id`, at `expectedVersion` only when one is given; undefined when there is no
 * such customer (at that version). No changes reads it as it is.
 */
export async function updateCustomer(
  env: Env,
  id: string,
  changes: Partial<Pick<Customer, "name" | "email" | "userName" | "phone" | "address">>,
  expectedVersion?: number,
): Promise<Customer | undefined> {
  if (Object.keys(changes).length === 0) return findCustomer(env, id, null);
  const at = expectedVersion === undefined ? undefined : eq(customers.version, expectedVersion);
  return database(env)
    .update(customers)
    .set({ ...changes, version: sql`${customers.version} + 1` })
    .where(and(eq(customers.id, id), at))
    .returning()
    .get();
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
