import type * as v from "valibot";
import { formatToken, type TokenRole } from "../domain/credentials";
import type { ChargeOut, StatementOut } from "../schemas/charges";
import type { CredentialOut, IssuedCredentialOut } from "../schemas/common";
import type { CustomerOut } from "../schemas/customers";
import type { OperationOut } from "../schemas/operations";
import type { HoldingOut, PartnerOut, ResourceOut, ServiceOut } from "../schemas/operator";
import type { ProductOut } from "../schemas/products";
import type {
  CommissionOut,
  QuotasOut,
  ResolveManyOut,
  ResourcesOut,
  ServiceQuotasOut,
} from "../schemas/quota";
import type {
  OrderOut,
  PurchaseOut,
  PurchaseRequest,
  QuoteOut,
  SubscriptionOut,
  UsageOut,
} from "../schemas/subscriptions";
import type { DeliveryOut, SecretOut, VendorOut } from "../schemas/syndication";
import type { VendorOrderOut, VendorSubscriptionOut, VendorUserOut } from "../schemas/vendor";

/**
 * One example per operation for the document, typed by the schemas they illustrate (so the
 * compiler keeps them true) and checked against those schemas again by the document's lint.
 */

type Out<S extends v.GenericSchema> = v.InferOutput<S>;

const at = "2026-12-01T12:00:00.000Z";
const partner = "0193a4f0-0000-7000-8000-0000000000a1";
const customerId = "0193a4f0-0000-7000-8000-000000000101";
const subscriptionId = "0193a4f0-0000-7000-8000-0000000005b1";
const orderId = "0193a4f0-0000-7000-8000-0000000000d1";
const vendorId = "0193a4f0-0000-7000-8000-0000000000c1";

export const customer: Out<typeof CustomerOut> = {
  id: customerId,
  partner,
  name: "Demo Customer",
  email: "ops@example.com",
  user_name: null,
  phone: null,
  address: null,
  created_at: at,
};

export const subscription: Out<typeof SubscriptionOut> = {
  id: subscriptionId,
  uuid: subscriptionId,
  resource: "dssd",
  product: "dssd",
  customer: customerId,
  amount: 100,
  start_time: "2026-12-01T12:00:00.000Z",
  end_time: "2027-01-01T12:00:00.000Z",
  period: "1 month",
  status: "active",
  auto_renew: false,
  price: "744.00",
  currency: "EUR",
  remaining: null,
  descendants: [],
  subscribed_object: null,
  run_state: null,
  deployment_status: null,
  syndicated_endpoints: null,
  end_user_instructions: null,
  order: orderId,
  extends: null,
  ended_at: null,
  end_reason: null,
  renewal_error: null,
  created_at: at,
};

export const order: Out<typeof OrderOut> = {
  id: orderId,
  buyer: customerId,
  lines: [
    {
      subscription: subscriptionId,
      product: "dssd",
      amount: 100,
      price: "744.00",
      charge: `purchase:${subscriptionId}`,
    },
  ],
  total_price: "744.00",
  currency: "EUR",
  state: "completed",
  created_at: at,
};

export const purchaseRequest: v.InferInput<typeof PurchaseRequest> = {
  objects: [{ customer: customerId, resource: "dssd", amount: 100, period: "1 month" }],
};

export const purchase: Out<typeof PurchaseOut> = {
  objects: [subscription],
  meta: { total_price: "744.00", currency: "EUR", orders: [order] },
};

export const quote: Out<typeof QuoteOut> = {
  objects: [
    {
      resource: "dssd",
      product: "dssd",
      customer: customerId,
      amount: 100,
      start_time: subscription.start_time,
      end_time: subscription.end_time,
      period: "1 month",
      auto_renew: false,
      price: "744.00",
      currency: "EUR",
    },
  ],
  meta: { total_price: "744.00", currency: "EUR" },
};

export const usage: Out<typeof UsageOut> = {
  subscription: subscriptionId,
  currency: "EUR",
  unit_price_per_hour: "1.00",
  intervals: [{ start: at, end: "2026-12-01T14:00:00.000Z", quantity: 2, seconds: 7200 }],
  running_seconds: 7200,
  charge: "4.00",
  billed: "4.00",
  settled: null,
  accruing: "0.00",
  lines: [
    {
      id: `usage:${subscriptionId}:1796126400000`,
      period_start: at,
      period_end: "2026-12-01T14:00:00.000Z",
      quantity: 2,
      seconds: 7200,
      amount: "4.00",
    },
  ],
  as_of: "2026-12-01T15:00:00.000Z",
};

export const holding: Out<typeof HoldingOut> = {
  holder: customerId,
  source: "system",
  resource: "cyclades.vm",
  limit: 2,
  usage: 1,
  pending: 0,
};

/** An issued credential of `role`, its token of that role's kind. */
export const credentialOf = (role: TokenRole): Out<typeof IssuedCredentialOut> => ({
  id: "0193a4f0-0000-7000-8000-0000000000e1",
  role,
  token: formatToken(
    role,
    "0193a4f0-0000-7000-8000-0000000000e1",
    "kQ3v2m9Xw0sJc8Lr5yTn1bHd7fGa4ZpE6uVq0iOe2Ck",
  ),
  created_at: at,
});

export const credential = credentialOf("partner");

export const revokedCredential: Out<typeof CredentialOut> = {
  id: "0193a4f0-0000-7000-8000-0000000000e1",
  role: "partner",
  label: "billing system",
  created_at: at,
  revoked_at: "2026-12-02T09:30:00.000Z",
};

export const partnerOut: Out<typeof PartnerOut> = {
  id: partner,
  name: "Demo Partner",
  rate_limit: "standard",
  created_at: at,
};

export const service: Out<typeof ServiceOut> = {
  id: "0193a4f0-0000-7000-8000-0000000000a2",
  partner,
  name: "cyclades",
  created_at: at,
};

export const resource: Out<typeof ResourceOut> = {
  name: "cyclades.vm",
  unit: null,
  description: "Virtual machines",
  service: "cyclades",
  allow_in_projects: true,
};

export const product: Out<typeof ProductOut> = {
  id: "dssd",
  name: "SSD storage",
  kind: "timed",
  unit: "GB",
  unit_price: "0.01",
  currency: "EUR",
  quota_resource: "stratus.dssd",
  aliases: ["hdd"],
  delivery: "builtin",
  vendor: null,
};

export const charge: Out<typeof ChargeOut> = {
  id: `purchase:${subscriptionId}`,
  kind: "purchase",
  partner,
  customer: customerId,
  subscription: subscriptionId,
  order: orderId,
  product: "dssd",
  quantity: 100,
  unit_price: "0.01",
  period_start: subscription.start_time,
  period_end: subscription.end_time,
  seconds: null,
  amount: "744.00",
  currency: "EUR",
  created_at: at,
  month: "2026-12",
};

export const statement: Out<typeof StatementOut> = {
  customer: customerId,
  month: "2026-12",
  start: "2026-12-01T00:00:00.000Z",
  end: "2027-01-01T00:00:00.000Z",
  closed: false,
  totals: { EUR: "744.00" },
  line_count: 1,
  objects: [charge],
  meta: { limit: 50, next_cursor: null },
};

export const operation: Out<typeof OperationOut> = {
  opRef: "op_0193a4f0c2d87b4e9a51c7e2f0b8d6a1",
  kind: "purchase",
  status: "queued",
  created_at: at,
  updated_at: at,
  result_status: null,
  result_location: null,
};

export const vendor: Out<typeof VendorOut> = { id: vendorId, name: "Demo Vendor", created_at: at };

export const secret: Out<typeof SecretOut> = {
  product: "backup",
  signing_secret: "whsec_MfKQ9r8GKYqXjVo1Z3v0b5JQ9Qx7pQbXc2Uu2n0c3Xs=",
  previous_secret_expires_at: "2026-12-02T12:00:00.000Z",
};

export const delivery: Out<typeof DeliveryOut> = {
  id: "msg_0193a4f0c2d87b4e9a51c7e2f0b8d6a1",
  vendor: vendorId,
  product: "backup",
  subscription: subscriptionId,
  type: "CREATED",
  sequence: 1,
  status: "delivered",
  attempts: 1,
  next_attempt_at: null,
  last_status: 204,
  last_error: null,
  created_at: at,
  delivered_at: at,
};

export const vendorSubscription: Out<typeof VendorSubscriptionOut> = {
  id: subscriptionId,
  self: `subscription/${subscriptionId}`,
  type: "NORMAL",
  billingPeriod: 0,
  deploymentStatus: "DEPLOYED",
  status: "ACTIVE",
  startDate: "2026-12-01T12:00:00Z",
  endDate: "2027-01-01T12:00:00Z",
  renewable: false,
  quantity: 1,
  product: { url: "product/backup" },
  buyer: { url: `user/${customerId}` },
  orders: [{ url: `order/${orderId}` }],
  invoices: [],
  syndicatedEndpoints: ["https://backup.example.com/customers/101"],
  endUserInstructions: "Sign in with your e-mail address.",
  sequence: 2,
};

export const vendorOrder: Out<typeof VendorOrderOut> = {
  id: orderId,
  self: `order/${orderId}`,
  type: "NORMAL",
  date: "2026-12-01T12:00:00Z",
  buyer: { url: `user/${customerId}` },
  subscription: { url: `subscription/${subscriptionId}` },
  budget: {
    configuration: { url: "productVersion/backup" },
    endOfPeriod: "2027-01-01T12:00:00Z",
    lines: [
      {
        product: { url: "product/backup" },
        subscription: { url: `subscription/${subscriptionId}` },
        quantity: 1,
        price: 5,
      },
    ],
    nation: "IT",
    totalPrice: 5,
  },
  lines: [
    {
      product: { url: "product/backup" },
      subscription: { url: `subscription/${subscriptionId}` },
      quantity: 1,
      price: 5,
    },
  ],
  totalPrice: 5,
  currency: "EUR",
  state: "VENDOR_APPROVED",
};

export const vendorUser: Out<typeof VendorUserOut> = {
  id: customerId,
  self: `user/${customerId}`,
  userName: "ops@example.com",
  name: "Demo Customer",
  email: "ops@example.com",
  phoneNumber: null,
  address: { city: "Athens", country: "GR" },
  creationDate: "2026-12-01T12:00:00Z",
  activationDate: "2026-12-01T12:00:00Z",
  activated: true,
  enabled: true,
  acceptedTerms: true,
  environment: "stratus",
  userRole: "ROLE_USER",
};

export const quotas: Out<typeof QuotasOut> = {
  system: { "cyclades.vm": { usage: 1, limit: 2, pending: 0 } },
};

export const serviceQuotas: Out<typeof ServiceQuotasOut> = { [customerId]: quotas };

export const quotaResources: Out<typeof ResourcesOut> = {
  "cyclades.vm": {
    unit: null,
    description: "Virtual machines",
    service: "cyclades",
    allow_in_projects: true,
  },
};

export const provision = { holder: customerId, source: "system", resource: "cyclades.vm", quantity: 1 };

export const commission: Out<typeof CommissionOut> = {
  serial: 57,
  issue_time: at,
  name: "create a VM",
  provisions: [provision],
};

export const resolved: Out<typeof ResolveManyOut> = {
  accepted: [57],
  rejected: [59],
  failed: [[58, { itemNotFound: { message: "serial 58 does not exist", code: 404 } }]],
};
