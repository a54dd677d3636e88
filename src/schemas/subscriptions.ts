import * as v from "valibot";
import { MAX_AMOUNT, MAX_PERIOD_YEARS } from "../domain/period";
import { MAX_OBJECTS } from "../domain/purchase";
import { MAX_FILTER_VALUES, MAX_LISTED_DESCENDANTS, STATUS_FILTERS } from "../domain/subscriptions";
import { DEPLOYMENT_STATUSES } from "../domain/webhooks";
import { CustomerFilter, EndInstant, Integer, StartInstant, Timestamp, Uuid } from "./common";
import { NOT_A_PARAMETER, Pagination, pageMeta } from "./pagination";

/** Request and response schemas of the subscriptions API (/v1, CloudSigma field names). */

const Period = v.pipe(
  v.string("must be text such as '2 months 1 week'"),
  v.maxLength(200),
  v.description(
    `Free-form, e.g. \`2 months 1 week\`: years, months, weeks, days, hours. A term lasts at most ${MAX_PERIOD_YEARS} years, and at most ${MAX_AMOUNT} of any one unit (400 naming \`period\` past either).`,
  ),
);

/** A number, or a string of digits as CloudSigma's own answers and clients send it (`"amount": "1"`). */
const Amount = v.pipe(
  v.union(
    [v.number(), v.pipe(v.string(), v.regex(/^[0-9]{1,16}$/), v.transform(Number))],
    "must be a whole number",
  ),
  v.integer("must be a whole number"),
  v.minValue(1, "must be at least 1"),
  v.maxValue(1_000_000_000_000, "is too large"),
);

/**
 * A purchase member that may be `null`, read as not given: CloudSigma's schema marks these nullable
 * and writable (`get_schema()` says so of `end_time` and `period`), so a client that sends every
 * member sends `null` where it has no value (`"period": null` beside a start and an end). Refused,
 * such a client could buy nothing; taken as given, the truth table would count it.
 */
const nullIsAbsent = <S extends v.GenericSchema>(schema: S) =>
  v.pipe(
    v.nullish(schema),
    v.transform((value) => value ?? undefined),
  );

const purchaseEntries = {
  customer: nullIsAbsent(
    v.pipe(
      Uuid,
      v.description(
        "Required with a partner's key when buying. A customer-scoped key acts as its customer: omitted (or null), it is that one; another answers 404. The calculator prices without one.",
      ),
    ),
  ),
  resource: v.pipe(v.string("must be a resource name"), v.minLength(1), v.maxLength(128)),
  amount: Amount,
  start_time: nullIsAbsent(StartInstant),
  end_time: nullIsAbsent(EndInstant),
  period: nullIsAbsent(Period),
  // Declared with its default, so the document and get_schema() state what a purchase gets.
  auto_renew: v.optional(v.boolean("must be a boolean"), false),
};

/**
 * Members a purchase object may carry without their being read: CloudSigma's read-only ones (a
 * client written for its servers, or one sending a subscription back as it read it, sends them)
 * and what `SubscriptionOut` answers. Made on the first purchase read, as that schema is declared
 * below, and kept: a purchase of 500 objects reads it 500 times.
 */
let notReadOnPurchase: ReadonlySet<string> | undefined;
const tolerated = (): ReadonlySet<string> =>
  (notReadOnPurchase ??= new Set([
    ...Object.keys(SubscriptionOut.entries),
    "discount_amount",
    "discount_percent",
    "last_notification",
    "resource_uri",
  ]));

const PURCHASE_MEMBERS = Object.keys(purchaseEntries);

/**
 * Any other member answers 400 naming it: a misspelt `auto_renw` or `start_tme` was dropped, and
 * the subscription bought without renewal, or from now instead of the day asked for, and charged.
 */
export const PurchaseObject = v.pipe(
  v.looseObject(purchaseEntries),
  v.rawCheck(({ dataset, addIssue }) => {
    if (!dataset.typed) return;
    const notRead = tolerated();
    for (const [key, value] of Object.entries(dataset.value)) {
      if (key in purchaseEntries || notRead.has(key)) continue;
      addIssue({
        message: `not a member of a purchase: ${PURCHASE_MEMBERS.join(", ")} are (and what a subscription answers, not read)`,
        path: [{ type: "object", origin: "key", input: dataset.value, key, value }],
      });
    }
  }),
  v.transform(({ customer, resource, amount, start_time, end_time, period, auto_renew }) => ({
    customer,
    resource,
    amount,
    start_time,
    end_time,
    period,
    auto_renew,
  })),
);

export const PurchaseRequest = v.object({
  objects: v.pipe(
    v.array(PurchaseObject, "must be a list of subscriptions to buy"),
    v.minLength(1, "must not be empty"),
    v.maxLength(MAX_OBJECTS, `at most ${MAX_OBJECTS} subscriptions can be bought in one request`),
  ),
});

/**
 * Strict: a filter the list does not take (`?uuid=`, `?resource__in=`) would otherwise be ignored
 * and the whole list answered, which a client would act on as if it matched.
 */
export const ListQuery = v.strictObject(
  {
    ...Pagination.entries,
    customer: CustomerFilter,
    status: v.optional(v.picklist(STATUS_FILTERS, `must be one of ${STATUS_FILTERS.join(", ")}`), "all"),
    resource: v.optional(
      v.pipe(
        v.string(),
        v.description(
          `Comma-separated product ids or aliases, at most ${MAX_FILTER_VALUES} values (repeats count).`,
        ),
        v.transform((s) =>
          s
            .split(",")
            .map((r) => r.trim().toLowerCase())
            .filter((r) => r.length > 0),
        ),
        v.maxLength(MAX_FILTER_VALUES, `at most ${MAX_FILTER_VALUES} values`),
        // A value named twice filters once.
        v.transform((values) => [...new Set(values)]),
      ),
    ),
    subscribed_object: v.optional(
      v.pipe(
        v.string(),
        v.maxLength(200, "is too long"),
        v.description(
          "CloudSigma's one declared filter: the subscription bound to an object. No subscription here is bound to one (`subscribed_object` is always null), so any value answers an empty page.",
        ),
      ),
    ),
  },
  "filters are customer, status, resource and subscribed_object; pages take limit, offset and cursor",
);

export const OrdersQuery = v.strictObject(
  { ...Pagination.entries, customer: CustomerFilter },
  NOT_A_PARAMETER,
);

export const UpdateRequest = v.strictObject(
  {
    amount: v.optional(Amount),
    auto_renew: v.optional(v.boolean("must be a boolean")),
  },
  "only amount and auto_renew can change",
);

const ACTIONS = ["extend", "auto_renew", "start", "stop"] as const;
/**
 * Strict: the spec has an action's values "specified in the request", and a client may put them in
 * the query (`?do=auto_renew&auto_renew=false`, `?do=extend&period=1%20week`). Ignored there, the
 * toggle would flip the flag the other way and the extension buy the default length: the values
 * are read from the body only, and anything but `do` in the query answers 400 naming it.
 */
export const ActionQuery = v.strictObject(
  { do: v.picklist(ACTIONS, "must be one of extend, auto_renew, start, stop") },
  "the query takes only do; period, end_time and auto_renew go in the JSON body",
);

/**
 * Strict: a member it does not take (`{"value": false}` for `auto_renew`) would otherwise be
 * ignored, and the flag toggled instead of set as asked.
 */
export const ActionBody = v.strictObject(
  {
    // As in a purchase, null is not given: an extension without either is its term's length again.
    period: nullIsAbsent(Period),
    end_time: nullIsAbsent(EndInstant),
    auto_renew: v.optional(v.boolean("must be a boolean")),
  },
  "the body takes only period, end_time (extend) and auto_renew (auto_renew)",
);

/**
 * The members of the action body each action reads. One another action reads (`auto_renew` on
 * an extend) is refused too: ignored, the extension would renew against the caller's wish.
 */
export const ACTION_MEMBERS: Record<
  (typeof ACTIONS)[number],
  ReadonlyArray<keyof v.InferOutput<typeof ActionBody>>
> = { extend: ["period", "end_time"], auto_renew: ["auto_renew"], start: [], stop: [] };

export const ConsumptionRequest = v.strictObject(
  { resource: v.pipe(v.string(), v.minLength(1), v.maxLength(128)), amount: Amount },
  "not a member of a consumption report: resource and amount are",
);

const Money = (what: string) =>
  v.pipe(v.string(), v.description(`${what}, a decimal string in \`currency\`.`));

/** The fields a subscription and a quote for one share. */
const Term = {
  resource: v.pipe(v.string(), v.description("The product bought (CloudSigma's name for it).")),
  product: v.pipe(v.string(), v.description("The product bought, by its id.")),
  customer: v.pipe(Uuid, v.description("The customer it is bought for.")),
  amount: v.pipe(Integer, v.description("How many units of the product.")),
  start_time: v.pipe(Timestamp, v.description("When the term starts.")),
  end_time: v.pipe(
    v.nullable(Timestamp),
    v.description("When the term ends; null for what runs until cancelled."),
  ),
  period: v.pipe(v.nullable(v.string()), v.description("The term's length as bought, e.g. `1 month`.")),
  auto_renew: v.pipe(v.boolean(), v.description("Whether the term renews itself when it ends.")),
  price: Money("The term's price"),
  currency: v.pipe(v.string(), v.description("ISO 4217 code of the prices.")),
};

export const SubscriptionOut = v.object({
  id: v.pipe(Uuid, v.description("The subscription's id.")),
  uuid: v.pipe(Uuid, v.description("The same as `id` (CloudSigma's name for it).")),
  ...Term,
  status: v.pipe(
    v.picklist(["active", "inactive", "expired"]),
    v.description(
      "Whether it is in force now: inactive before it starts (or while queued), expired once over.",
    ),
  ),
  remaining: v.pipe(v.nullable(Integer), v.description("What a depletable has left; null for other kinds.")),
  descendants: v.pipe(
    v.array(Uuid),
    v.description(
      `The extensions that follow it in its chain, in the chain's order: every one in a single read and a grouped list, the first ${MAX_LISTED_DESCENDANTS} in a row of the plain list.`,
    ),
  ),
  subscribed_object: v.pipe(v.null(), v.description("Always null: no object is bound to a subscription.")),
  run_state: v.pipe(
    v.nullable(v.picklist(["running", "stopped"])),
    v.description("Whether a CaaS cloud runs; null for other kinds."),
  ),
  deployment_status: v.pipe(
    v.nullable(v.picklist(DEPLOYMENT_STATUSES)),
    v.description("What the vendor of a syndicated product reported; null for a built-in product."),
  ),
  syndicated_endpoints: v.pipe(
    v.nullable(v.array(v.string())),
    v.description(
      "Where the customer reaches a syndicated application, as its vendor reported; null for a built-in product.",
    ),
  ),
  end_user_instructions: v.pipe(
    v.nullable(v.string()),
    v.description(
      "How the customer uses a syndicated application, as its vendor reported; null for a built-in product.",
    ),
  ),
  order: v.pipe(Uuid, v.description("The order that bought it.")),
  extends: v.pipe(v.nullable(Uuid), v.description("The subscription it extends, if any.")),
  ended_at: v.pipe(v.nullable(Timestamp), v.description("When it ended; null while it has not.")),
  end_reason: v.pipe(
    v.nullable(v.picklist(["cancelled", "depleted", "expired", "failed"])),
    v.description("Why it ended; null while it has not."),
  ),
  renewal_error: v.pipe(v.nullable(v.string()), v.description("Why its last renewal failed, if it did.")),
  created_at: v.pipe(Timestamp, v.description("When it was bought.")),
});

export const OrderOut = v.object({
  id: Uuid,
  buyer: Uuid,
  lines: v.array(
    v.object({
      subscription: Uuid,
      product: v.string(),
      amount: Integer,
      price: Money("The line's price"),
      charge: v.pipe(
        v.string(),
        v.description("The key of the charge line this line writes once the order completes."),
      ),
    }),
  ),
  total_price: Money("The order's total"),
  currency: v.string(),
  state: v.picklist(["pending", "completed", "failed"]),
  created_at: Timestamp,
});

export const PurchaseOut = v.object({
  objects: v.array(SubscriptionOut),
  meta: v.object({
    total_price: Money("The purchase's total"),
    currency: v.string(),
    orders: v.array(OrderOut),
  }),
});

/** What buying would answer, priced; nothing is bought, so nothing has an id yet. */
export const QuoteObject = v.object({
  ...Term,
  customer: v.pipe(
    v.nullable(Uuid),
    v.description("The customer it would be bought for; null when priced for no customer."),
  ),
});

export const QuoteOut = v.object({
  objects: v.array(QuoteObject),
  meta: v.object({ total_price: Money("The total"), currency: v.string() }),
});

/**
 * A PUT's body: the subscription as a read answers it, whole or in part. The read-only fields must
 * equal what a read answers now; `amount` and `auto_renew` apply as a PATCH would.
 */
export const ReplaceRequest = v.strictObject(
  { ...v.partial(SubscriptionOut).entries, ...UpdateRequest.entries },
  "only the fields a read of the subscription answers can be sent",
);

export const PageOut = v.object({ objects: v.array(SubscriptionOut), meta: pageMeta });

export const ConsumptionOut = v.object({
  objects: v.pipe(v.array(SubscriptionOut), v.description("The subscriptions drained, oldest first.")),
  meta: v.object({
    unallocated: v.pipe(Integer, v.description("What no subscription covered.")),
  }),
});

export const UsageOut = v.object({
  subscription: Uuid,
  currency: v.string(),
  unit_price_per_hour: Money("Per unit and hour"),
  intervals: v.array(
    v.object({ start: Timestamp, end: v.nullable(Timestamp), quantity: Integer, seconds: Integer }),
  ),
  running_seconds: v.pipe(Integer, v.description("Its whole life's, `settled` included.")),
  charge: v.pipe(v.string(), v.description("`billed` + `accruing`.")),
  billed: v.pipe(
    v.string(),
    v.description("Σ the usage lines of the closed running time, `settled` included."),
  ),
  settled: v.pipe(
    v.nullable(
      v.object({
        through: Timestamp,
        intervals: Integer,
        running_seconds: Integer,
        billed: Money("Σ their lines"),
      }),
    ),
    v.description(
      "The months wholly billed before `through`, no longer in `intervals` and `lines` (their lines are in GET /v1/charges?subscription=…&until=…); null until a month is.",
    ),
  ),
  accruing: v.pipe(v.string(), v.description("The running interval up to `as_of`, not yet a line.")),
  lines: v.array(
    v.object({
      id: v.pipe(v.string(), v.description("The charge line's key (GET /v1/charges).")),
      period_start: Timestamp,
      period_end: Timestamp,
      quantity: Integer,
      seconds: Integer,
      amount: Money("The line's amount"),
    }),
  ),
  as_of: Timestamp,
});

export const OrderPageOut = v.object({ objects: v.array(OrderOut), meta: pageMeta });
