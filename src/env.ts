import type { OperationMessage } from "./app/operations";
import type { RenewalMessage } from "./app/renewals";
import type { WebhookMessage } from "./app/webhooks";
import type { QuotaLedger } from "./objects/quota-ledger";
import type { SubscriptionObject } from "./objects/subscription-object";

export interface Env {
  DB: D1Database;
  QUOTA_LEDGER: DurableObjectNamespace<QuotaLedger>;
  SUBSCRIPTION: DurableObjectNamespace<SubscriptionObject>;
  OPERATIONS: Queue<OperationMessage>;
  WEBHOOKS: Queue<WebhookMessage>;
  RENEWALS: Queue<RenewalMessage>;
  /** Where this deployment is reached; event payloads link to it. */
  PUBLIC_URL: string;
}
