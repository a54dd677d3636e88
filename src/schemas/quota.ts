import * as v from "valibot";
import { MAX_COMMISSION_NAME, MAX_LISTED_SERIALS } from "../domain/commissions";
import { MAX_LISTED_HOLDERS, MAX_PROVISIONS } from "../domain/quota";

/** Request, response and error (cloudFault) schemas of the quota API (Astakos dialect). */

const Quantity = v.pipe(
  v.number("must be an integer"),
  v.integer("must be an integer"),
  v.safeInteger("must be a safe integer (|n| < 2^53)"),
);

const Key = v.pipe(v.string("must be a string"), v.minLength(1, "must not be empty"), v.maxLength(256));

export const Provision = v.object({
  holder: v.pipe(
    Key,
    v.description(
      "A user's UUID (the spec's dialect), `user:<uuid>` or `project:<uuid>` (the project dialect).",
    ),
  ),
  source: v.pipe(
    v.nullable(Key),
    v.description(
      "`system` (the holder's base project), `project:<uuid>` for a member's holding, null for a project's own.",
    ),
  ),
  resource: Key,
  quantity: Quantity,
});

export const IssueCommission = v.object({
  name: v.optional(v.nullable(v.pipe(v.string("must be a string"), v.maxLength(MAX_COMMISSION_NAME))), ""),
  force: v.optional(v.boolean("must be a boolean"), false),
  auto_accept: v.optional(v.boolean("must be a boolean"), false),
  provisions: v.pipe(
    v.array(Provision, "must be a list of provisions"),
    v.maxLength(MAX_PROVISIONS, `at most ${MAX_PROVISIONS} provisions`),
  ),
});

/**
 * A serial as resolve-many takes it: any integer, as Astakos checks only that (`are_integer`); one
 * no commission has (0, a negative) fails on its own as not found, the others still resolve.
 */
const Serial = v.pipe(v.number("must be an integer"), v.integer("must be an integer"), v.safeInteger());

export const SerialParams = v.object({
  serial: v.pipe(
    v.string(),
    v.regex(/^\d{1,15}$/),
    v.metadata({ type: "integer", minimum: 1, pattern: undefined }),
    v.transform(Number),
    // Serials start at 1, as the document says: `/commissions/0` names nothing, as `/-3` does.
    v.minValue(1),
  ),
});

export const CommissionAction = v.object({
  accept: v.optional(v.unknown()),
  reject: v.optional(v.unknown()),
});

const Serials = v.pipe(
  v.array(Serial, "must be a list of serials"),
  v.maxLength(MAX_LISTED_SERIALS, `at most ${MAX_LISTED_SERIALS} serials`),
);

export const ResolveMany = v.object({
  accept: v.optional(Serials, []),
  reject: v.optional(Serials, []),
});

/**
 * `a,b,…` as astakosclient joins a list, at most `MAX_LISTED_HOLDERS`, a repeat counted once. A
 * value that is no id of the partner's (not even a UUID) matches nothing, as in Astakos: a filter
 * that leaves nothing answers 404, which its callers read as "no such holder".
 */
const UuidList = (what: string) =>
  v.pipe(
    v.string(),
    v.description(`One ${what} id, or several comma-separated (at most ${MAX_LISTED_HOLDERS}).`),
    v.transform((s) => s.split(",")),
    v.maxLength(MAX_LISTED_HOLDERS, `at most ${MAX_LISTED_HOLDERS} values`),
    v.array(v.pipe(v.string(), v.maxLength(64, "is too long for an id"))),
    v.transform((ids) => [...new Set(ids)]),
  );

export const ServiceQuotasQuery = v.object({
  user: v.optional(UuidList("user")),
  project: v.optional(UuidList("project")),
});
export const ServiceProjectQuotasQuery = v.object({ project: v.optional(UuidList("project")) });

const Count = v.pipe(v.number(), v.integer());
const ProjectUsage = {
  project_limit: v.optional(Count),
  project_usage: v.optional(Count),
  project_pending: v.optional(Count),
};
const Usage = v.pipe(
  v.object({ usage: Count, limit: Count, pending: Count, ...ProjectUsage }),
  v.description("Under a project's id (not under `system`), also that project's own numbers: `project_*`."),
);
export const QuotasOut = v.record(v.string(), v.record(v.string(), Usage));
export const ServiceQuotasOut = v.record(v.string(), QuotasOut);
export const ServiceProjectQuotasOut = v.record(
  v.string(),
  v.record(v.string(), v.object({ project_limit: Count, project_usage: Count, project_pending: Count })),
);
export const ResourcesOut = v.record(
  v.string(),
  v.object({
    unit: v.nullable(v.string()),
    description: v.string(),
    service: v.string(),
    allow_in_projects: v.boolean(),
  }),
);
export const SerialOut = v.object({ serial: Count });
export const SerialsOut = v.array(Count);
export const CommissionOut = v.object({
  serial: Count,
  issue_time: v.pipe(v.string(), v.isoTimestamp()),
  name: v.string(),
  provisions: v.array(Provision),
});
/** cloudFault bodies, as http/cloudfault.ts renders them. */

const faultBody = <const C extends number>(code: C) => ({ message: v.string(), code: v.literal(code) });

/** `{"<fault>": {message, code}}`, closed: the dialect names every member. */
function fault<const K extends string, const C extends number>(key: K, code: C) {
  const entries = { [key]: v.strictObject(faultBody(code)) } as Record<
    K,
    v.StrictObjectSchema<ReturnType<typeof faultBody<C>>, undefined>
  >;
  return v.strictObject(entries);
}

export const BadRequestFault = fault("badRequest", 400);
export const UnauthorizedFault = fault("unauthorized", 401);
export const ForbiddenFault = fault("forbidden", 403);
/** A method the path does not serve: Synnefo's `NotAllowed` (snf-django `faults.py`), with `Allow`. */
export const NotAllowedFault = fault("notAllowed", 405);
export const ConflictFault = fault("conflict", 409);
export const BadMediaTypeFault = fault("badMediaType", 415);
export const InternalServerErrorFault = fault("internalServerError", 500);
export const ServiceUnavailableFault = fault("serviceUnavailable", 503);

export const ItemNotFoundFault = v.strictObject({
  itemNotFound: v.strictObject({
    ...faultBody(404),
    data: v.optional(
      v.pipe(
        v.strictObject({ provision: Provision, name: v.literal("NoHoldingError") }),
        v.description("A commission's provision whose holding does not exist."),
      ),
    ),
  }),
});

export const OverLimitFault = v.strictObject({
  overLimit: v.strictObject({
    ...faultBody(413),
    data: v.strictObject({
      provision: Provision,
      name: v.pipe(
        v.picklist(["NoCapacityError", "NoQuantityError"]),
        v.description("Over the limit, or a release below zero usage."),
      ),
      limit: v.pipe(
        Count,
        v.description("NoCapacityError: the holding's limit. NoQuantityError: 0, the floor."),
      ),
      usage: v.pipe(
        Count,
        v.description(
          "NoCapacityError: usage_max (pending included). NoQuantityError: usage_min, what is certainly used.",
        ),
      ),
    }),
  }),
});

/** A rate limit, as OpenStack Nova's RateLimitFault: the quota's key, told apart by its code. */
export const RateLimitFault = v.strictObject({
  overLimit: v.strictObject({
    ...faultBody(429),
    retryAfter: v.pipe(v.string(), v.description("Seconds to wait.")),
  }),
});

/** Every fault variant by its component name (the OpenAPI document lists each). */
export const FAULTS = {
  BadRequestFault,
  UnauthorizedFault,
  ForbiddenFault,
  ItemNotFoundFault,
  NotAllowedFault,
  ConflictFault,
  OverLimitFault,
  RateLimitFault,
  BadMediaTypeFault,
  InternalServerErrorFault,
  ServiceUnavailableFault,
};

/** Any fault, as resolve-many pairs a failed serial with one. */
export const CloudFault = v.union(Object.values(FAULTS));

export const ResolveManyOut = v.object({
  accepted: v.array(Count),
  rejected: v.array(Count),
  failed: v.pipe(
    v.array(v.strictTuple([Count, CloudFault])),
    v.description("Each serial that failed, paired with the cloudFault that tells why."),
  ),
});
