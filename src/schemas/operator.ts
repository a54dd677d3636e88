import * as v from "valibot";
import { RATE_LIMIT_TIERS } from "../db/schema";
import { STRATUS_SERVICE } from "../domain/catalog";
import { Integer, Name, QuotaLimit, Slug, Timestamp, Uuid } from "./common";

/** Request and response schemas of the operator endpoints under /v1. */

export const RateLimitTier = v.pipe(
  v.picklist(RATE_LIMIT_TIERS, `must be one of ${RATE_LIMIT_TIERS.join(", ")}`),
  v.description(
    "Requests each of the partner's credentials (API keys, service and user tokens) may make: " +
      "`standard` 600 and `raised` 6000 per 60 s; `unlimited` is not limited.",
  ),
);

export const CreatePartner = v.object({ name: Name, rate_limit: v.optional(RateLimitTier, "standard") });
export const UpdatePartner = v.strictObject(
  { name: v.optional(Name), rate_limit: v.optional(RateLimitTier) },
  "only name and rate_limit can change",
);
export const PartnerOut = v.object({
  id: Uuid,
  name: v.string(),
  rate_limit: v.picklist(RATE_LIMIT_TIERS),
  created_at: Timestamp,
});

export const CreateService = v.object({
  partner: Uuid,
  name: v.pipe(
    Slug,
    v.check(
      (name) => name !== STRATUS_SERVICE,
      `"${STRATUS_SERVICE}" is reserved for stratus's own resources`,
    ),
    v.description("Matches the `service` of the resources it manages. `stratus` is reserved."),
  ),
});
export const ServiceOut = v.object({ id: Uuid, partner: Uuid, name: v.string(), created_at: Timestamp });

export const ResourceParams = v.object({
  name: v.pipe(Slug, v.description("Unique, by convention `<service>.<thing>`, e.g. `cyclades.vm`.")),
});

export const CreateResource = v.object({
  unit: v.optional(v.nullable(v.pipe(v.string(), v.maxLength(64))), null),
  description: v.optional(v.pipe(v.string(), v.maxLength(1000)), ""),
  service: Slug,
  allow_in_projects: v.optional(v.boolean(), true),
});
export const ResourceOut = v.object({
  name: v.string(),
  unit: v.nullable(v.string()),
  description: v.string(),
  service: v.string(),
  allow_in_projects: v.boolean(),
});

export const SetLimit = v.object({
  source: v.optional(Slug, "system"),
  resource: Slug,
  limit: QuotaLimit,
});
export const HoldingOut = v.object({
  holder: Uuid,
  source: v.string(),
  resource: v.string(),
  limit: Integer,
  usage: Integer,
  pending: Integer,
});

export const HoldingsOut = v.object({ objects: v.array(HoldingOut) });

export const ResourceListOut = v.object({ objects: v.array(ResourceOut) });
