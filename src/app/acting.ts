import type { Principal } from "../db/credentials";
import { findPartner } from "../db/partners";
import { badRequest, describeFieldErrors, type FieldError, notFound } from "../domain/errors";
import type { PurchaseObject } from "../domain/purchase";
import { scopeOf } from "./reads";

/** Whom a purchase or a price calculation is for, as the caller's credential says. */

/** Operators act for a partner they name; partners, and their customers' keys, for that partner. */
export function actingPartner(principal: Principal): string {
  if (!principal.partnerId) throw badRequest("operators buy through a partner's API key");
  return principal.partnerId;
}

/**
 * The partner what a caller creates (a customer, a project) belongs to: an operator names it (404
 * if there is none such), a partner's key is its own partner and may name only that one.
 */
export async function owningPartner(
  env: Env,
  principal: Principal,
  named: string | undefined,
): Promise<string> {
  if (principal.role === "operator") {
    if (!named) throw badRequest("partner is required", [{ point: "/partner", message: "is required" }]);
    if (!(await findPartner(env, named))) throw notFound(`partner ${named} does not exist`);
    return named;
  }
  if (named && named !== principal.partnerId) {
    throw badRequest("partner must be your own", [
      { point: "/partner", message: "must be your own partner id" },
    ]);
  }
  if (!principal.partnerId) throw notFound("partner does not exist");
  return principal.partnerId;
}

type Requested = Omit<PurchaseObject, "customer"> & { customer?: string | undefined };

/**
 * The objects with their customer. A customer-scoped key acts as its customer, as a CloudSigma
 * account does: an object naming none is for it, one naming another answers 404 (another
 * customer does not exist for it). A partner's key names each object's customer, or none (null).
 */
export function withCustomers(
  principal: Principal,
  objects: readonly Requested[],
): PurchaseObject<string | null>[] {
  const own = scopeOf(principal).customerId;
  return objects.map((o) => {
    if (own !== null && o.customer !== undefined && o.customer !== own) {
      throw notFound(`customer ${o.customer} does not exist`);
    }
    return { ...o, customer: o.customer ?? own };
  });
}

/** Buying needs a customer on every object: a partner's key names each (400 naming the ones without). */
export function requireCustomers(objects: readonly PurchaseObject<string | null>[]): PurchaseObject[] {
  const missing: FieldError[] = objects.flatMap((o, i) =>
    o.customer === null
      ? [{ point: `/objects/${i}/customer`, message: "is required with a partner's key" }]
      : [],
  );
  if (missing.length > 0) throw badRequest(describeFieldErrors(missing, "objects"), missing);
  return objects as PurchaseObject[];
}
