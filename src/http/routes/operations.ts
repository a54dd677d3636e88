import * as v from "valibot";
import { operationStatus, operationView } from "../../app/operations";
import { listOperations } from "../../db/operations";
import { OPERATION_STATUSES } from "../../db/schema";
import { Pagination, pageMeta } from "../../schemas/pagination";
import { badRequest } from "../errors";
import { decodeCursor, toPage } from "../pagination";
import { defineRoute } from "../route";

/** The status endpoint of long-running operations (CaaS OpRef). */

const tag = "Operations";

const OperationOut = v.object({
  opRef: v.string(),
  kind: v.picklist(["purchase", "update", "extend", "auto_renew", "run", "cancel"]),
  status: v.picklist(OPERATION_STATUSES),
  created_at: v.string(),
  updated_at: v.string(),
  result_status: v.nullable(v.number()),
  result_location: v.nullable(v.string()),
});

export const operationRoutes = [
  defineRoute({
    method: "GET",
    path: "/v1/operations/{opRef}",
    summary: "Poll an operation",
    description:
      "While `queued` or `running`: 202 with the operation and `Retry-After`. Once `succeeded`: the final code (201, 200) with the resulting resource and its `Location`. Once `failed`: the persisted problem with its 4xx code. Kept at least 30 days.",
    tag,
    auth: ["partner", "operator"],
    params: v.object({ opRef: v.pipe(v.string(), v.regex(/^op_[0-9a-f]{32}$/)) }),
    responses: {
      202: { description: "Still in progress", schema: OperationOut },
      200: { description: "Succeeded (an update or action)" },
      201: { description: "Succeeded (a purchase)" },
      404: { description: "No such operation" },
    },
    async handle({ env, principal, params, requestId }) {
      const scope = principal.role === "operator" ? null : principal.partnerId;
      const answer = await operationStatus(env, params.opRef, scope);
      if (answer.status < 400) return answer;
      // A failed operation's problem was stored by whatever ran it; this poll's request id is added.
      const problem = (await answer.json()) as Record<string, unknown>;
      return new Response(JSON.stringify({ ...problem, request_id: requestId }), answer);
    },
  }),
  defineRoute({
    method: "GET",
    path: "/v1/operations",
    summary: "List the partner's operations",
    tag,
    auth: ["partner"],
    query: v.object({ ...Pagination.entries, status: v.optional(v.picklist(OPERATION_STATUSES)) }),
    responses: {
      200: { description: "A page", schema: v.object({ objects: v.array(OperationOut), meta: pageMeta }) },
    },
    async handle({ env, principal, query }) {
      if (!principal.partnerId) throw badRequest("only partners have operations");
      const rows = await listOperations(env, {
        partnerId: principal.partnerId,
        status: query.status,
        after: decodeCursor(query.cursor),
        limit: query.limit,
      });
      return Response.json(toPage(rows, query.limit, (o) => o.opRef, operationView));
    },
  }),
];
