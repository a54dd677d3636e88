import { ownCustomers } from "../db/customers";
import { listResources } from "../db/resources";
import { homeOf } from "../domain/commissions";
import { AppError, badRequest, notFound } from "../domain/errors";
import { mergeProvisions, type Provision } from "../domain/quota";
import { ttlCache } from "../domain/ttl-cache";
import type { RecoveryContext } from "./ledger-commissions";
import type { HoldFailure } from "./ledger-holdings";
import { ledgerOf } from "./quota-ledger";

/**
 * Issuing a commission, the client every writer of quota goes through (the quota API, purchases,
 * a subscription's own quota moves): checks what no ledger can (whose customers, whose resources),
 * then asks the commission's home ledger (`homeOf`: its first holder's), which takes it from there.
 */

/**
 * Who issues: stratus itself (`serviceId` null), holding quota for subscriptions on any resource,
 * or a service, which commissions only the resources registered to it (`resources.service` =
 * `serviceName`).
 */
export type Issuer =
  | { serviceId: null; partnerId: string }
  | { serviceId: string; partnerId: string; serviceName: string };

export interface IssueInput {
  name: string;
  force: boolean;
  autoAccept: boolean;
  provisions: Provision[];
  /**
   * What the commission is for. Issuing again with the reference of a live commission returns
   * that commission instead of holding the quota twice: retried work never double-charges.
   */
  reference?: string;
  /** What the recovery sweep settles a pending commission of stratus's own by, should its request die. */
  recovery?: RecoveryContext;
}

function failureError(provision: Provision, failure: HoldFailure): AppError {
  if (failure.name === "NoHoldingError") return noHolding(provision);
  const message =
    failure.name === "NoCapacityError"
      ? `${provision.resource} of ${provision.holder} (${provision.source}): usage ${failure.usage} + ${provision.quantity} exceeds limit ${failure.limit}`
      : `${provision.resource} of ${provision.holder} (${provision.source}): releasing ${-provision.quantity} would bring usage below zero`;
  return new AppError("over_limit", message, {
    data: { provision, name: failure.name, limit: failure.limit, usage: failure.usage },
  });
}

function noHolding(provision: Provision): AppError {
  return notFound(`holding ${provision.holder}/${provision.source}/${provision.resource} does not exist`, {
    provision,
    name: "NoHoldingError",
  });
}

/**
 * The service each registered resource belongs to. Owners rarely change, so they are kept for a
 * while; a name not registered is not remembered, so a resource registered a moment ago is found.
 */
const ownerOfResource = ttlCache<string>(60_000);

/**
 * The first provision on a resource registered to another service than `serviceName`: one cached
 * lookup. An unregistered resource is nobody's; its holding does not exist, and the ledger says so.
 */
async function foreignProvision(
  env: Env,
  serviceName: string,
  provisions: readonly Provision[],
): Promise<Provision | undefined> {
  const owners = await ownerOfResource.many(
    [...new Set(provisions.map((p) => p.resource))],
    async () => new Map((await listResources(env)).map((r) => [r.name, r.service])),
  );
  return provisions.find((p) => {
    const owner = owners.get(p.resource);
    return owner !== undefined && owner !== serviceName;
  });
}

export async function issueCommission(
  env: Env,
  issuer: Issuer,
  input: IssueInput,
  now: Date,
): Promise<number> {
  const provisions = mergeProvisions(input.provisions);
  if (!provisions) throw badRequest("the quantities of one holding add up beyond the safe-integer range");

  const service = issuer.serviceId === null ? null : issuer.serviceName;
  const [known, foreign] = await Promise.all([
    ownCustomers(env, issuer.partnerId, [...new Set(provisions.map((p) => p.holder))]),
    service === null ? undefined : foreignProvision(env, service, provisions),
  ]);
  const stranger = provisions.find((p) => !known.has(p.holder));
  if (stranger) throw noHolding(stranger);
  // Refused as Astakos refuses a well-formed commission it will not take (InvalidDataError: 400
  // badRequest), before any ledger is touched: no serial is taken and nothing is held.
  if (foreign) {
    throw badRequest(
      `resource ${foreign.resource} is not registered to service ${service}: a service commissions only its own resources`,
    );
  }

  const home = homeOf(
    provisions.map((p) => p.holder),
    issuer.serviceId,
  );
  const answer = await ledgerOf(env, home).issue({
    home,
    serviceId: issuer.serviceId,
    reference: input.reference ?? null,
    name: input.name,
    provisions,
    force: input.force,
    autoAccept: input.autoAccept,
    issueTime: now.toISOString(),
    ...(input.recovery ? { recovery: input.recovery } : {}),
  });
  if (answer.ok) return answer.serial;
  switch (answer.reason) {
    case "refused":
      throw failureError(answer.provision, answer.failure);
    case "busy":
      // A retry racing its first attempt: not an answer, so the key keeps its work for the next try.
      throw new AppError(
        "unavailable",
        `commission ${input.reference} is being issued by another request; try again`,
      );
    case "abandoned":
      throw new AppError(
        "conflict",
        "the commission was abandoned while it was being issued; issue it again",
      );
  }
}
