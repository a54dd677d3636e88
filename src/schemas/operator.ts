import * as v from "valibot";
import { RATE_LIMIT_TIERS } from "../db/schema";
import { STRATUS_SERVICE } from "../domain/catalog";
import { Integer, Name, QuotaLimit, Slug, Timestamp, Uuid } from "./common";
import { wholeListMeta } from "./pagination";

/** Request and response schemas of the operator endpoints under /v1. */

export const RateLimitTier = v.pipe(
  v.picklist(RATE_LIMIT_TIERS, `must be one of ${RATE_LIMIT_TIERS.join(", ")}`),
  v.description(
    "Requests each of the partner's credentials (API keys, service and user tokens) may make: " +
      "`standard` 600 and `raised` 6000 per 60 s; `unlimited` is not limited.",
  ),
);

/**
 * The operator's bodies answer 400 naming a member they do not read: a misspelt optional member
 * (`alow_in_projects`, `sorce`) would otherwise be dropped, and its default silently taken.
 */
export const CreatePartner = v.strictObject(
  { name: Name, rate_limit: v.optional(RateLimitTier, "standard") },
  "not a member of a partner: name and rate_limit are",
);
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

export const CreateService = v.strictObject(
  {
    partner: Uuid,
    name: v.pipe(
      Slug,
      v.check(
        (name) => name !== STRATUS_SERVICE,
        `"${STRATUS_SERVICE}" is reserved for stratus's own resources`,
      ),
      v.description("Matches the `service` of the resources it manages. `stratus` is reserved."),
    ),
  },
  "not a member of a service: partner and name are",
);
export const ServiceOut = v.object({ id: Uuid, partner: Uuid, name: v.string(), created_at: Timestamp });

export const ResourceParams = v.object({
  name: v.pipe(Slug, v.description("Unique, by convention `<service>.<thing>`, e.g. `cyclades.vm`.")),
});

export const CreateResource = v.strictObject(
  {
    unit: v.optional(v.nullable(v.pipe(v.string(), v.maxLength(64))), null),
    description: v.optional(v.pipe(v.string(), v.maxLength(1000)), ""),
    service: Slug,
    allow_in_projects: v.optional(v.boolean(), true),
  },
  "not a member of a resource: unit, description, service and allow_in_projects are",
);
export const ResourceOut = v.object({
  name: v.string(),
  unit: v.nullable(v.string()),
  description: v.string(),
  service: v.string(),
  allow_in_projects: v.boolean(),
});

export const SetLimit = v.strictObject(
  { source: v.optional(Slug, "system"), resource: Slug, limit: QuotaLimit },
  "not a member of a limit: source, resource and limit are",
);
export const HoldingOut = v.object({
  holder: Uuid,
  source: v.string(),
  resource: v.string(),
  limit: Integer,
  usage: Integer,
  pending: Integer,
});

export const HoldingsOut = v.object({ objects: v.array(HoldingOut), meta: wholeListMeta });

export const ResourceListOut = v.object({ objects: v.array(ResourceOut), meta: wholeListMeta });
