import * as v from "valibot";
import { MAX_RESOLVE_SERIALS } from "../domain/commissions";
import { MAX_PROVISIONS } from "../domain/quota";

/** Request schemas of the quota API (Astakos dialect). */

const Quantity = v.pipe(
  v.number("must be an integer"),
  v.integer("must be an integer"),
  v.safeInteger("must be a safe integer (|n| < 2^53)"),
);

const Key = v.pipe(v.string("must be a string"), v.minLength(1, "must not be empty"), v.maxLength(256));

export const Provision = v.object({
  holder: Key,
  source: Key,
  resource: Key,
  quantity: Quantity,
});

export const IssueCommission = v.object({
  name: v.optional(v.nullable(v.pipe(v.string("must be a string"), v.maxLength(1024))), ""),
  force: v.optional(v.boolean("must be a boolean"), false),
  auto_accept: v.optional(v.boolean("must be a boolean"), false),
  provisions: v.pipe(
    v.array(Provision, "must be a list of provisions"),
    v.maxLength(MAX_PROVISIONS, `at most ${MAX_PROVISIONS} provisions`),
  ),
});

export const Serial = v.pipe(
  v.number("must be an integer"),
  v.integer("must be an integer"),
  v.minValue(1),
  v.safeInteger(),
);

export const SerialParams = v.object({
  serial: v.pipe(v.string(), v.regex(/^\d{1,15}$/), v.transform(Number)),
});

export const CommissionAction = v.object({
  accept: v.optional(v.unknown()),
  reject: v.optional(v.unknown()),
});

const Serials = v.pipe(
  v.array(Serial, "must be a list of serials"),
  v.maxLength(MAX_RESOLVE_SERIALS, `at most ${MAX_RESOLVE_SERIALS} serials`),
);

export const ResolveMany = v.object({
  accept: v.optional(Serials, []),
  reject: v.optional(Serials, []),
});

export const ServiceQuotasQuery = v.object({
  user: v.optional(v.pipe(v.string(), v.uuid("must be a UUID"))),
});

const Usage = v.object({ usage: v.number(), limit: v.number(), pending: v.number() });
export const QuotasOut = v.record(v.string(), v.record(v.string(), Usage));
export const ServiceQuotasOut = v.record(v.string(), QuotasOut);
export const ResourcesOut = v.record(
  v.string(),
  v.object({
    unit: v.nullable(v.string()),
    description: v.string(),
    service: v.string(),
    allow_in_projects: v.boolean(),
  }),
);
export const SerialOut = v.object({ serial: v.number() });
export const CommissionOut = v.object({
  serial: v.number(),
  issue_time: v.string(),
  name: v.string(),
  provisions: v.array(Provision),
});
export const ResolveManyOut = v.object({
  accepted: v.array(v.number()),
  rejected: v.array(v.number()),
  failed: v.array(v.tuple([v.number(), v.record(v.string(), v.unknown())])),
});
