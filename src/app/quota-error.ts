import { AppError } from "../domain/errors";
import type { SubscriptionRecord } from "../domain/subscriptions";

/**
 * A quota failure of stratus's own commission for `records` (a purchase, an amount change), told
 * in the partner API's terms: 409 `quota-exceeded`. Any other error is answered as it is.
 */
export function quotaError(error: unknown, records: readonly SubscriptionRecord[]): unknown {
  if (!(error instanceof AppError) || (error.kind !== "over_limit" && error.kind !== "not_found"))
    return error;
  const data = error.options.data ?? {};
  // Only a commission's refusal names the provision it refused; another 404 is not about quota.
  if (data.provision === undefined) return error;
  const provision = data.provision as { holder?: string; resource?: string; quantity?: number };
  const record = records.find(
    (r) => r.quotaResource === provision.resource && r.customerId === provision.holder,
  );
  const limit = typeof data.limit === "number" ? data.limit : 0;
  const usage = typeof data.usage === "number" ? data.usage : 0;
  return new AppError(
    "over_limit",
    `quota exceeded for ${record?.product ?? provision.resource}: customer ${provision.holder} has ${usage} of ${limit} in use and asked for ${provision.quantity} more`,
    {
      data: {
        resource: record?.product ?? provision.resource,
        quota_resource: provision.resource,
        customer: provision.holder,
        limit,
        usage,
        requested: provision.quantity,
      },
    },
  );
}
