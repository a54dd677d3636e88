import type { OperationMessage } from "./app/operations";
import type { RenewalMessage } from "./app/renewals";
import type { MonthCloseMessage } from "./app/usage";
import type { WebhookMessage } from "./app/webhooks";
import type { QuotaLedger } from "./objects/quota-ledger";
import type { SubscriptionObject } from "./objects/subscription-object";

export interface Env {
  DB: D1Database;
  QUOTA_LEDGER: DurableObjectNamespace<QuotaLedger>;
  SUBSCRIPTION: DurableObjectNamespace<SubscriptionObject>;
  OPERATIONS: Queue<OperationMessage>;
  WEBHOOKS: Queue<WebhookMessage>;
  /** The cron's work: renewals and expiries, and month closes of running clouds. */
  RENEWALS: Queue<RenewalMessage | MonthCloseMessage>;
  /** Requests per credential of a `standard`-tier partner, and of vendors (src/http/rate-limit.ts). */
  RATE_LIMIT_STANDARD: RateLimit;
  /** Requests per credential of a `raised`-tier partner, and of operators. */
  RATE_LIMIT_RAISED: RateLimit;
  /** Failed authentications per client address. */
  RATE_LIMIT_AUTH_FAILURES: RateLimit;
  /** Where this deployment is reached; event payloads link to it. */
  PUBLIC_URL: string;
  /** The recovery bound, in seconds (`recoveryBoundMs`). */
  RECOVERY_AFTER_SECONDS: string;
  /** Origins allowed to call the API from a browser, comma-separated (`*`: any); empty: CORS off. */
  CORS_ORIGINS: string;
}
