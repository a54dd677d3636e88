/** The document's tags, in the order the reference shows them: each route names one. */
export const TAGS = {
  Meta: "This API's own description and a liveness probe. Public.",
  Operator:
    "The operator's catalog and tenants: partners and their API keys, services and their tokens, quota resources and customers' limits.",
  Products: "The catalog of products partners buy, each holding quota on one of stratus's own resources.",
  Customers:
    "A partner's customers, the holders of quota, and their user tokens; projects, which cap what their member customers hold together.",
  Subscriptions:
    "Buying, reading, changing, extending and cancelling subscriptions (CloudSigma's subscriptions API and the CaaS partner API). Writes may run as operations (`Prefer: respond-async`).",
  Orders: "The orders every purchase, extension and renewal writes.",
  Charges: "The immutable charges ledger and each customer's monthly statements.",
  Operations: "Long-running operations (CaaS OpRef): poll one until it answers what its request would have.",
  Syndication:
    "Vendors, their products' syndication endpoints and signing secrets, and the webhook deliveries to them.",
  "Vendor API (ClouDesire)":
    "What a vendor reads of the subscriptions, orders and customers of its own products, and how it reports provisioning (ClouDesire dialect).",
  "Quota (Astakos)":
    "The quota API in Astakos's dialect: quotas, resources and the commissions services issue. Errors are cloudFault bodies.",
} as const;

export type Tag = keyof typeof TAGS;
