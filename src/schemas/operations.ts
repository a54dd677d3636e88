import * as v from "valibot";
import { OPERATION_STATUSES } from "../db/schema";
import { CustomerFilter, Integer, Timestamp } from "./common";
import { NOT_A_PARAMETER, Pagination, pageMeta } from "./pagination";

/** Long-running operations (CaaS OpRef): what a 202 answers and the status endpoint reports. */

export const OpRef = v.pipe(v.string(), v.regex(/^op_[0-9a-f]{32}$/, "must be an operation reference"));

export const OperationOut = v.object({
  opRef: OpRef,
  kind: v.picklist(["purchase", "update", "extend", "auto_renew", "run", "cancel", "consume"]),
  status: v.picklist(OPERATION_STATUSES),
  created_at: Timestamp,
  updated_at: Timestamp,
  result_status: v.pipe(v.nullable(Integer), v.description("The final answer's status, once finished.")),
  result_location: v.pipe(
    v.nullable(v.string()),
    v.description("The final answer's `Location`, once it has one."),
  ),
});

export const OperationPageOut = v.object({ objects: v.array(OperationOut), meta: pageMeta });

export const OperationsQuery = v.strictObject(
  {
    ...Pagination.entries,
    customer: CustomerFilter,
    status: v.optional(v.picklist(OPERATION_STATUSES, `must be one of ${OPERATION_STATUSES.join(", ")}`)),
  },
  NOT_A_PARAMETER,
);
