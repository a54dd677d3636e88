import type { Principal } from "../db/credentials";
import { type Customer, findCustomer } from "../db/customers";
import { notFound } from "../domain/errors";

/** Operators see every customer; anyone else only their partner's, and others' do not exist. */
export async function visibleCustomer(env: Env, principal: Principal, id: string): Promise<Customer> {
  const customer = await findCustomer(env, id, principal.role === "operator" ? null : principal.partnerId);
  if (!customer) throw notFound(`customer ${id} does not exist`);
  return customer;
}
