import { ChargeOut, ChargePageOut, StatementOut } from "../schemas/charges";
import { CredentialOut, IssuedCredentialOut, KeyRequest } from "../schemas/common";
import {
  AddressOut,
  CreateCustomer,
  CustomerOut,
  CustomerPageOut,
  UpdateCustomer,
} from "../schemas/customers";
import { FieldError, Problem, QuotaExceededProblem, RateLimitedProblem } from "../schemas/errors";
import { HealthOut, OpenApiOut } from "../schemas/meta";
import { OperationOut, OperationPageOut } from "../schemas/operations";
import {
  CreatePartner,
  CreateResource,
  CreateService,
  HoldingOut,
  HoldingsOut,
  PartnerOut,
  ResourceListOut,
  ResourceOut,
  ServiceOut,
  SetLimit,
  UpdatePartner,
} from "../schemas/operator";
import { pageMeta } from "../schemas/pagination";
import { ProductListOut, ProductOut, PutProduct } from "../schemas/products";
import {
  CloudFault,
  CommissionAction,
  CommissionOut,
  FAULTS,
  IssueCommission,
  Provision,
  QuotasOut,
  ResolveMany,
  ResolveManyOut,
  ResourcesOut,
  SerialOut,
  SerialsOut,
  ServiceQuotasOut,
} from "../schemas/quota";
import {
  ActionBody,
  ConsumptionOut,
  ConsumptionRequest,
  OrderOut,
  OrderPageOut,
  PageOut,
  PurchaseOut,
  PurchaseRequest,
  QuoteOut,
  SubscriptionOut,
  UpdateRequest,
  UsageOut,
} from "../schemas/subscriptions";
import {
  CreateVendor,
  DeliveryDetailOut,
  DeliveryOut,
  DeliveryPageOut,
  EndpointOut,
  EndpointRequest,
  EventOut,
  SecretOut,
  VendorOut,
} from "../schemas/syndication";
import { VendorOrderOut, VendorPatch, VendorSubscriptionOut, VendorUserOut } from "../schemas/vendor";
import type { Schema } from "./reply";

/**
 * The named schemas of the document (`#/components/schemas/<name>`): wherever a route's schema
 * uses one of these, the document refers to it by name, and a generated client gets its type.
 * Answers are described as the Worker renders them, requests as it accepts them.
 */

export const RESPONSE_COMPONENTS: Record<string, Schema> = {
  Subscription: SubscriptionOut,
  SubscriptionPage: PageOut,
  Purchase: PurchaseOut,
  Quote: QuoteOut,
  Consumption: ConsumptionOut,
  Usage: UsageOut,
  Order: OrderOut,
  OrderPage: OrderPageOut,
  Customer: CustomerOut,
  CustomerPage: CustomerPageOut,
  Address: AddressOut,
  Holding: HoldingOut,
  Holdings: HoldingsOut,
  IssuedCredential: IssuedCredentialOut,
  Credential: CredentialOut,
  Partner: PartnerOut,
  Service: ServiceOut,
  Resource: ResourceOut,
  ResourceList: ResourceListOut,
  Product: ProductOut,
  ProductList: ProductListOut,
  Charge: ChargeOut,
  ChargePage: ChargePageOut,
  Statement: StatementOut,
  Operation: OperationOut,
  OperationPage: OperationPageOut,
  PageMeta: pageMeta,
  Vendor: VendorOut,
  SyndicationEndpoint: EndpointOut,
  SigningSecret: SecretOut,
  Delivery: DeliveryOut,
  DeliveryPage: DeliveryPageOut,
  DeliveryDetail: DeliveryDetailOut,
  WebhookEvent: EventOut,
  VendorSubscription: VendorSubscriptionOut,
  VendorOrder: VendorOrderOut,
  VendorUser: VendorUserOut,
  Quotas: QuotasOut,
  ServiceQuotas: ServiceQuotasOut,
  QuotaResources: ResourcesOut,
  Serial: SerialOut,
  Serials: SerialsOut,
  Commission: CommissionOut,
  ResolveManyResult: ResolveManyOut,
  Provision,
  Health: HealthOut,
  OpenApiDocument: OpenApiOut,
  Problem,
  FieldError,
  QuotaExceededProblem,
  RateLimitedProblem,
  CloudFault,
  ...FAULTS,
};

export const REQUEST_COMPONENTS: Record<string, Schema> = {
  PurchaseRequest,
  SubscriptionUpdate: UpdateRequest,
  SubscriptionAction: ActionBody,
  ConsumptionReport: ConsumptionRequest,
  CustomerCreate: CreateCustomer,
  CustomerUpdate: UpdateCustomer,
  CredentialRequest: KeyRequest,
  LimitSet: SetLimit,
  PartnerCreate: CreatePartner,
  PartnerUpdate: UpdatePartner,
  ServiceCreate: CreateService,
  ResourcePut: CreateResource,
  ProductPut: PutProduct,
  VendorCreate: CreateVendor,
  SyndicationEndpointPut: EndpointRequest,
  VendorSubscriptionPatch: VendorPatch,
  CommissionIssue: IssueCommission,
  CommissionResolution: CommissionAction,
  ResolveMany,
  Provision,
};
