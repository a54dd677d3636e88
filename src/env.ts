import type { OperationMessage } from "./app/operations";
import type { QuotaLedger } from "./objects/quota-ledger";
import type { SubscriptionObject } from "./objects/subscription-object";

export interface Env {
  DB: D1Database;
  QUOTA_LEDGER: DurableObjectNamespace<QuotaLedger>;
  SUBSCRIPTION: DurableObjectNamespace<SubscriptionObject>;
  OPERATIONS: Queue<OperationMessage>;
}
