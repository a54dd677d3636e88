import * as v from "valibot";
import { DEPLOYMENT_STATUSES } from "../domain/webhooks";
import { Integer, Uuid } from "./common";
import { AddressOut } from "./customers";
import { Endpoint } from "./syndication";

/** The vendor API (ClouDesire dialect, spec/syndication-webhooks.md) under /api. */

/** ClouDesire's dates: ISO 8601 to the second, in UTC. */
const Instant = v.pipe(v.string(), v.isoTimestamp());

const Link = (what: string) =>
  v.pipe(v.object({ url: v.string() }), v.description(`A link to the ${what}: \`${what}/<id>\`.`));

export const VendorPatch = v.strictObject(
  {
    deploymentStatus: v.optional(
      v.picklist(DEPLOYMENT_STATUSES, `must be one of ${DEPLOYMENT_STATUSES.join(", ")}`),
    ),
    syndicatedEndpoints: v.optional(v.pipe(v.array(Endpoint, "must be a list of URLs"), v.maxLength(20))),
    endUserInstructions: v.optional(v.pipe(v.string("must be text"), v.maxLength(4000))),
    // The spec's own example spells it so; vendors copying it are understood.
    endUserIstructions: v.optional(v.pipe(v.string("must be text"), v.maxLength(4000))),
  },
  "only deploymentStatus, syndicatedEndpoints and endUserInstructions can change",
);

export const VendorSubscriptionOut = v.object({
  id: Uuid,
  self: v.string(),
  type: v.literal("NORMAL"),
  billingPeriod: Integer,
  deploymentStatus: v.picklist(DEPLOYMENT_STATUSES),
  status: v.picklist(["ACTIVE", "INACTIVE", "EXPIRED"]),
  startDate: v.nullable(Instant),
  endDate: v.nullable(Instant),
  renewable: v.boolean(),
  quantity: Integer,
  product: Link("product"),
  buyer: Link("user"),
  orders: v.array(Link("order")),
  invoices: v.array(Link("invoice")),
  syndicatedEndpoints: v.array(v.string()),
  endUserInstructions: v.nullable(v.string()),
  sequence: v.pipe(Integer, v.description("The sequence of the subscription's last event.")),
});

const OrderLines = v.pipe(
  v.array(
    v.object({
      product: Link("product"),
      subscription: Link("subscription"),
      quantity: Integer,
      price: v.number(),
    }),
  ),
  v.description("The order's lines of the vendor's own products."),
);

export const VendorOrderOut = v.object({
  id: Uuid,
  self: v.string(),
  type: v.literal("NORMAL"),
  date: Instant,
  buyer: Link("user"),
  subscription: Link("subscription"),
  budget: v.pipe(
    v.object({
      configuration: Link("productVersion"),
      endOfPeriod: v.nullable(Instant),
      lines: OrderLines,
      nation: v.pipe(
        v.nullable(v.string()),
        v.description("The buyer's country (ISO 3166 alpha-2), when its address has one."),
      ),
      totalPrice: v.number(),
    }),
    v.description(
      "What was bought, as ClouDesire's order tells it: `configuration` names the product's version (stratus versions a product by its id), `endOfPeriod` when the first line's term ends.",
    ),
  ),
  lines: OrderLines,
  totalPrice: v.number(),
  currency: v.string(),
  state: v.picklist(["PENDING", "VENDOR_APPROVED", "FAILED"]),
});

export const VendorUserOut = v.object({
  id: Uuid,
  self: v.string(),
  userName: v.string(),
  name: v.string(),
  email: v.nullable(v.string()),
  phoneNumber: v.nullable(v.string()),
  address: v.nullable(AddressOut),
  creationDate: Instant,
  /** When the account was activated: stratus's customers are active from their creation. */
  activationDate: Instant,
  activated: v.boolean(),
  enabled: v.boolean(),
  acceptedTerms: v.boolean(),
  environment: v.string(),
  userRole: v.literal("ROLE_USER"),
});
