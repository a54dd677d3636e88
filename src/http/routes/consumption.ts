import { catalogKnowing } from "../../app/catalog";
import { visibleCustomer } from "../../app/customers";
import { scopeOf, visibleRecord } from "../../app/reads";
import { holdsDepletable } from "../../db/depletion-queue";
import { findProduct, isDepletable } from "../../domain/catalog";
import { badRequest } from "../../domain/errors";
import { uuidv7 } from "../../domain/ids";
import { chargeFor } from "../../domain/metering";
import { money } from "../../domain/subscriptions";
import { accruing, usageLines } from "../../domain/usage";
import { IdParams } from "../../schemas/common";
import { ConsumptionOut, ConsumptionRequest, UsageOut } from "../../schemas/subscriptions";
import * as examples from "../examples";
import { ACCEPTED, respond } from "../operations";
import { defineRoute } from "../route";
import { ASYNC } from "./subscription-updates";

/** What subscriptions consume: a CaaS cloud's metered running time, and depletables drained by reports. */

const tag = "Subscriptions";
/** Who reads a subscription's usage: a customer-scoped key too, its own (`scopeOf`). */
const readers = ["partner", "operator", "account"] as const;
const now = () => new Date();

export const consumptionRoutes = [
  defineRoute({
    method: "GET",
    path: "/v1/subscriptions/{id}/usage",
    summary: "Run intervals and charges: the usage lines written, plus what the running interval accrues",
    description:
      "Each line is a piece of running time within one UTC month, rounded on its own (half up, quantity × seconds × unit price per hour ÷ 3600); `charge` = `billed` (Σ lines) + `accruing` (the running interval up to now, rounded the same way).",
    tag,
    auth: readers,
    params: IdParams,
    responses: { 200: { description: "Usage", schema: UsageOut, example: examples.usage } },
    async handle({ env, principal, params }) {
      const r = await visibleRecord(env, scopeOf(principal), params.id);
      const at = now();
      const price = BigInt(r.unitPriceMinor);
      const total = chargeFor(r.runs, price, at.getTime());
      // What the charges ledger has (or will have, once the object's push lands) and what accrues.
      const lines = usageLines(r.id, r.runs, price);
      const settled = r.settledRuns;
      const billed = lines.reduce((n, l) => n + l.amountMinor, BigInt(settled?.billedMinor ?? "0"));
      const open = accruing(r.id, r.runs, price, at.getTime());
      return {
        status: 200,
        body: {
          subscription: r.id,
          currency: r.currency,
          unit_price_per_hour: money(price, r.currency),
          intervals: r.runs.map((run) => ({
            start: new Date(run.start).toISOString(),
            end: run.end === null ? null : new Date(run.end).toISOString(),
            quantity: run.quantity,
            seconds: Number(chargeFor([{ ...run, quantity: 1 }], 0n, at.getTime()).seconds),
          })),
          running_seconds: Number(total.seconds + BigInt(settled?.seconds ?? "0")),
          charge: money(billed + open.amountMinor, r.currency),
          billed: money(billed, r.currency),
          settled: settled
            ? {
                through: new Date(settled.through).toISOString(),
                intervals: settled.intervals,
                running_seconds: Number(settled.seconds),
                billed: money(BigInt(settled.billedMinor), r.currency),
              }
            : null,
          accruing: money(open.amountMinor, r.currency),
          lines: lines.map((l) => ({
            id: l.key,
            period_start: new Date(l.start).toISOString(),
            period_end: new Date(l.end).toISOString(),
            quantity: l.quantity,
            seconds: Number(l.seconds),
            amount: money(l.amountMinor, r.currency),
          })),
          as_of: at.toISOString(),
        },
      };
    },
  }),
  defineRoute({
    method: "POST",
    path: "/v1/customers/{id}/consumption",
    summary: "Report consumption of a depletable resource (e.g. tx)",
    description: `Drains the customer's depletable subscriptions of the resource oldest first; at zero a subscription expires and the next becomes active. \`unallocated\` is what no subscription covered. A report is applied once: its retry with the same Idempotency-Key drains nothing more.${ASYNC}`,
    tag,
    auth: ["partner", "operator", "service"],
    params: IdParams,
    body: ConsumptionRequest,
    bodyExample: { resource: "tx", amount: 5 },
    async: true,
    responses: {
      200: {
        description: "What was drained",
        schema: ConsumptionOut,
        example: {
          objects: [{ ...examples.subscription, resource: "tx", product: "tx", remaining: 95 }],
          meta: { unallocated: 0 },
        },
      },
      202: ACCEPTED,
    },
    errors: { bad_request: "An unknown resource" },
    async handle({ env, request, principal, params, body }) {
      const customer = await visibleCustomer(env, principal, params.id);
      const product = findProduct(await catalogKnowing(env, [body.resource]), body.resource);
      if (!product)
        throw badRequest("resource is no product of the catalog", [
          { point: "/resource", message: "is no product of the catalog" },
        ]);
      // Only a depletable is used up by what is consumed: any other would answer as drained, untouched.
      // A product the operator has made another kind since still drains the depletables bought of
      // it: each subscription keeps the kind it was bought as, and its traffic was paid for.
      if (!isDepletable(product) && !(await holdsDepletable(env, customer.id, product.id))) {
        throw badRequest(`${product.id} is not depletable: only a depletable (e.g. tx) is consumed`, [
          { point: "/resource", message: `is a ${product.kind} product, not a depletable` },
        ]);
      }
      const answer = await respond(env, request, {
        kind: "consume",
        partnerId: customer.partnerId,
        at: now().toISOString(),
        customer: customer.id,
        product: product.id,
        amount: body.amount,
        report: uuidv7(),
      });
      return answer;
    },
  }),
];
