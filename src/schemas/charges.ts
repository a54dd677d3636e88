import * as v from "valibot";
import { CHARGE_KINDS } from "../domain/charges";
import { CustomerFilter, Integer, queryInstant, Timestamp, Uuid } from "./common";
import { NOT_A_PARAMETER, Pagination, pageMeta } from "./pagination";

/** Request and response schemas of the charges ledger and statements (/v1). */

export const ChargesQuery = v.strictObject(
  {
    ...Pagination.entries,
    customer: CustomerFilter,
    subscription: v.optional(v.pipe(Uuid, v.description("Only this subscription's lines."))),
    since: v.optional(queryInstant("Lines written at or after this instant.")),
    until: v.optional(queryInstant("Lines written before this instant.")),
  },
  NOT_A_PARAMETER,
);

export const StatementParams = v.object({
  id: Uuid,
  month: v.pipe(v.string(), v.description("A calendar month in UTC: `YYYY-MM`.")),
});

export const ChargeOut = v.object({
  id: v.pipe(
    v.string(),
    v.description(
      "The line's key, named by what caused it: `purchase:<subscription>`, `reversal:<subscription>`, `usage:<subscription>:<epoch ms the metered piece starts>`.",
    ),
  ),
  kind: v.picklist(CHARGE_KINDS),
  partner: Uuid,
  customer: Uuid,
  subscription: Uuid,
  order: v.nullable(Uuid),
  product: v.string(),
  quantity: Integer,
  unit_price: v.pipe(
    v.nullable(v.string()),
    v.description("Per unit and hour (per unit consumed for depletables), a decimal string in `currency`."),
  ),
  period_start: v.nullable(Timestamp),
  period_end: v.nullable(Timestamp),
  seconds: v.nullable(Integer),
  amount: v.pipe(v.string(), v.description("A decimal string in `currency`; negative for a reversal.")),
  currency: v.string(),
  created_at: v.pipe(Timestamp, v.description("When D1 wrote the line.")),
  month: v.pipe(
    v.string(),
    v.description(
      "The statement (`YYYY-MM`) the line is on: a term line's is the month it was written in; a usage line's the month its period lies in, or, if that month was already closed when the line was written, the month it was written in.",
    ),
  ),
});

export const ChargePageOut = v.object({ objects: v.array(ChargeOut), meta: pageMeta });

export const StatementOut = v.object({
  customer: Uuid,
  month: v.string(),
  start: v.pipe(Timestamp, v.description("The month's first instant (UTC).")),
  end: v.pipe(Timestamp, v.description("The next month's first instant: the month is over from then on.")),
  closed: v.pipe(
    v.boolean(),
    v.description(
      "The month is over and the cron has closed its usage: its lines and totals can no longer change.",
    ),
  ),
  totals: v.pipe(
    v.record(v.string(), v.string()),
    v.description("Per currency, the sum of all the month's lines, a decimal string."),
  ),
  line_count: v.pipe(Integer, v.description("How many lines the month has, over all pages.")),
  objects: v.array(ChargeOut),
  meta: pageMeta,
});
