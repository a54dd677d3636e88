import type { Principal } from "../db/credentials";
import { type Customer, findCustomer } from "../db/customers";
import { notFound } from "../domain/errors";
import { scopeOf } from "./reads";

/**
 * Operators see every customer; partners only their own, a customer-scoped key only its customer;
 * the others do not exist.
 */
export async function visibleCustomer(env: Env, principal: Principal, id: string): Promise<Customer> {
  const scope = scopeOf(principal);
  const customer =
    scope.customerId === null || scope.customerId === id
      ? await findCustomer(env, id, scope.partnerId)
      : undefined;
  if (!customer) throw notFound(`customer ${id} does not exist`);
  return customer;
}
