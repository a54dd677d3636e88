import type { QuotaLedger } from "./objects/quota-ledger";

export interface Env {
  DB: D1Database;
  QUOTA_LEDGER: DurableObjectNamespace<QuotaLedger>;
}
