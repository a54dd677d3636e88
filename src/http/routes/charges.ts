import type * as v from "valibot";
import { visibleCustomer } from "../../app/customers";
import { scopeOf } from "../../app/reads";
import { type Charge, type ChargePosition, listCharges, readStatement } from "../../db/charges";
import { isClosed, parseMonth } from "../../domain/charges";
import { badRequest } from "../../domain/errors";
import { money } from "../../domain/subscriptions";
import {
  type ChargeOut,
  ChargePageOut,
  ChargesQuery,
  StatementOut,
  StatementParams,
} from "../../schemas/charges";
import { Pagination } from "../../schemas/pagination";
import * as examples from "../examples";
import { type PageWindow, pagedAnswer, pageWindow, toPage } from "../pagination";
import { defineRoute } from "../route";

/**
 * The charges ledger and the customers' monthly statements. Lines come oldest first (by when they
 * were written, then by key): a client that has read to the end asks again with `since` set to
 * the last line's `created_at` to find the lines written since.
 */

const tag = "Charges";
/** A customer-scoped key sees its own customer's lines and statements (`scopeOf`). */
const readers = ["operator", "partner", "account"] as const;

export const chargeView = (c: Charge): v.InferOutput<typeof ChargeOut> => ({
  id: c.key,
  kind: c.kind,
  partner: c.partnerId,
  customer: c.customerId,
  subscription: c.subscriptionId,
  order: c.orderId,
  product: c.product,
  quantity: c.quantity,
  unit_price: c.unitPriceMinor === null ? null : money(BigInt(c.unitPriceMinor), c.currency),
  period_start: c.periodStart,
  period_end: c.periodEnd,
  seconds: c.seconds,
  amount: money(BigInt(c.amountMinor), c.currency),
  currency: c.currency,
  created_at: c.createdAt,
  month: c.month,
});

/** A line's place in the ledger's order, as the cursor carries it: `<created_at> <key>`. */
const positionOf = (c: Charge) => `${c.createdAt} ${c.key}`;

/** A position `positionOf` could have made: D1's UTC instant, then a line's key. */
const POSITION = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z (?:purchase|reversal|usage):\S+$/;
const isPosition = (key: string) => POSITION.test(key);

function position(decoded: string | undefined): ChargePosition | undefined {
  if (decoded === undefined) return undefined;
  const space = decoded.indexOf(" ");
  if (space < 1) {
    throw badRequest("cursor is not valid", [
      { point: "/cursor", message: "is not a cursor this API issued" },
    ]);
  }
  return { createdAt: decoded.slice(0, space), key: decoded.slice(space + 1) };
}

export const chargeRoutes = [
  defineRoute({
    method: "GET",
    path: "/v1/charges",
    summary: "List charge lines",
    description:
      "Oldest first. Partners see their own customers' lines, the operator everyone's; a customer or subscription that is not the caller's answers an empty page. `since` is inclusive, `until` exclusive.",
    tag,
    auth: readers,
    query: ChargesQuery,
    responses: {
      200: {
        description: "A page of lines",
        schema: ChargePageOut,
        example: { objects: [examples.charge], meta: { limit: 50, next_cursor: null } },
      },
    },
    async handle({ env, principal, query }) {
      if (query.since && query.until && query.since.getTime() > query.until.getTime()) {
        throw badRequest("since must not be after until", [
          { point: "/since", message: "must not be after until" },
        ]);
      }
      const filter = {
        scope: scopeOf(principal),
        customerId: query.customer,
        subscriptionId: query.subscription,
        since: query.since,
        until: query.until,
      };
      const page = async (window: PageWindow) => {
        const rows = await listCharges(env, filter, position(window.after), window.offset, window.limit);
        return toPage(rows, window, positionOf, chargeView);
      };
      return { status: 200, ...(await pagedAnswer(pageWindow(query, isPosition), page)) };
    },
  }),
  defineRoute({
    method: "GET",
    path: "/v1/customers/{id}/statements/{month}",
    summary: "A customer's statement for a month",
    description:
      "The lines on the calendar month's statement (UTC; a term line by when it was written, a usage line by the month it meters), oldest first and paged, with the month's totals per currency. `closed` once the month is over and its usage closed by the cron: its lines can no longer change.",
    tag,
    auth: readers,
    params: StatementParams,
    query: Pagination,
    responses: { 200: { description: "The statement", schema: StatementOut, example: examples.statement } },
    errors: { bad_request: "Not a month (`YYYY-MM`), or a cursor this API did not issue" },
    async handle({ env, principal, params, query }) {
      const month = parseMonth(params.month);
      if (!month) {
        throw badRequest("month is not YYYY-MM", [
          { point: "/month", message: "must be a month as YYYY-MM, 01 to 12" },
        ]);
      }
      const customer = await visibleCustomer(env, principal, params.id);
      const page = async (window: PageWindow): Promise<v.InferOutput<typeof StatementOut>> => {
        const statement = await readStatement(
          env,
          customer.id,
          month,
          position(window.after),
          window.offset,
          window.limit,
        );
        const total = statement.totals.reduce((sum, t) => sum + t.lines, 0);
        return {
          customer: customer.id,
          month: month.name,
          start: month.start.toISOString(),
          end: month.end.toISOString(),
          closed: isClosed(month, statement.now, statement.closedThrough),
          totals: Object.fromEntries(
            statement.totals.map((t) => [t.currency, money(t.amountMinor, t.currency)]),
          ),
          line_count: statement.totals.reduce((n, t) => n + t.lines, 0),
          ...toPage(statement.lines, window, positionOf, chargeView, total),
        };
      };
      return { status: 200, ...(await pagedAnswer(pageWindow(query, isPosition), page)) };
    },
  }),
];
