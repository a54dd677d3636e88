import * as v from "valibot";
import { scopeOf } from "../../app/reads";
import { listOperations } from "../../db/operations";
import { OperationOut, OperationPageOut, OperationsQuery, OpRef } from "../../schemas/operations";
import { ConsumptionOut, PurchaseOut, SubscriptionOut } from "../../schemas/subscriptions";
import * as examples from "../examples";
import { operationStatus, operationView } from "../operations";
import { type PageWindow, pagedAnswer, pageWindow, toPage } from "../pagination";
import { LOCATION } from "../reply";
import { defineRoute } from "../route";

/** The status endpoint of long-running operations (CaaS OpRef). */

const tag = "Operations";

export const operationRoutes = [
  defineRoute({
    method: "GET",
    path: "/v1/operations/{opRef}",
    summary: "Poll an operation",
    description:
      "While `queued` or `running`: 202 with the operation and `Retry-After`. Once `succeeded`: the final code (201 for a purchase, 200 otherwise) with what the request would have answered and its `Location`. Once `failed`: the problem the work failed with, with its code (409, 409 `quota-exceeded`, 412 when an `If-Match` version was no longer current once the queued work ran, 424; 409 too once given up after 8 attempts, what it bought half-way undone). Kept at least 30 days. A service's token reads its partner's consumption reports.",
    tag,
    auth: ["partner", "operator", "account", "service"],
    params: v.object({ opRef: OpRef }),
    responses: {
      202: {
        description: "Still in progress",
        schema: OperationOut,
        example: { ...examples.operation, status: "running" },
        headers: {
          Location: { description: "This operation.", required: true },
          "Retry-After": {
            description:
              "Seconds to wait before polling again: a tenth of the operation's age, from 1 up to 60 (one waiting for a vendor is polled once a minute).",
            required: true,
            schema: { type: "integer", minimum: 0 },
          },
          "Preference-Applied": { description: "`respond-async`.", schema: { type: "string" } },
        },
      },
      200: {
        description: "Succeeded: an update, action, cancellation or consumption report",
        schema: v.union([SubscriptionOut, ConsumptionOut]),
        headers: { Location: { description: "The subscription changed, if the work names one." } },
        example: examples.subscription,
      },
      201: {
        description: "Succeeded: a purchase",
        schema: PurchaseOut,
        headers: LOCATION,
        example: examples.purchase,
      },
    },
    errors: {
      conflict:
        "Failed: conflicts with the subscription's state, the purchase was given up, or the work was given up after 8 attempts",
      over_limit: "Failed: over quota; nothing was bought or changed",
      precondition_failed: "Failed: the `If-Match` version was no longer current when the queued work ran",
      failed_dependency: "Failed: a vendor could not provision",
    },
    // A service reports consumption, the one write it may run as an operation: it polls those.
    handle: ({ env, principal, params }) =>
      operationStatus(
        env,
        params.opRef,
        scopeOf(principal),
        principal.role === "service" ? ["consume"] : null,
      ),
  }),
  defineRoute({
    method: "GET",
    path: "/v1/operations",
    summary: "List operations",
    description:
      "Oldest first, optionally of one status. A partner's own; the operator's, every partner's (`?customer=` narrows either).",
    tag,
    auth: ["partner", "operator", "account"],
    query: OperationsQuery,
    responses: {
      200: {
        description: "A page",
        schema: OperationPageOut,
        example: { objects: [examples.operation], meta: { limit: 50, next_cursor: null } },
      },
    },
    async handle({ env, principal, query }) {
      const filter = { scope: scopeOf(principal), customer: query.customer, status: query.status };
      const page = async (window: PageWindow) => {
        const { rows, total } = await listOperations(env, { ...filter, ...window });
        return toPage(rows, window, (o) => o.opRef, operationView, total);
      };
      return {
        status: 200,
        ...(await pagedAnswer(
          pageWindow(query, (key) => v.is(OpRef, key)),
          page,
        )),
      };
    },
  }),
];
