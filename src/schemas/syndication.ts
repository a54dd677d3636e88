import * as v from "valibot";
import { DELIVERY_STATUSES } from "../db/schema-webhooks";
import { Integer, Timestamp, Uuid } from "./common";
import { NOT_A_PARAMETER, Pagination, pageMeta } from "./pagination";

/** Vendors, syndication endpoints and signing secrets, and the webhook deliveries (/v1). */

export const Endpoint = v.pipe(
  v.string("must be an http(s) URL"),
  v.url("must be an http(s) URL"),
  // The URL as sent is what is stored and shown: no control character or space, which the URL
  // parser would quietly strip or encode.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it refuses.
  v.regex(/^https?:\/\/[^\s\u0000-\u001f\u007f-\u009f]+$/i, "must be an http(s) URL"),
  v.maxLength(2048),
);

export const CreateVendor = v.strictObject(
  { name: v.pipe(v.string(), v.trim(), v.minLength(1), v.maxLength(200)) },
  "not a member of a vendor: name is",
);

export const VendorOut = v.object({ id: Uuid, name: v.string(), created_at: Timestamp });

/**
 * Where a syndicated product's events are posted. Not with a user and password in it: fetch
 * drops them (workerd sends no Authorization for them), so the endpoint would refuse every event
 * until it died. Events are authenticated by their Standard Webhooks signature.
 */
export const WebhookEndpoint = v.pipe(
  Endpoint,
  v.check(
    (url) => URL.canParse(url) && new URL(url).username === "" && new URL(url).password === "",
    "must not carry a user or password: they are not sent; receivers check the webhook-signature",
  ),
);

export const EndpointRequest = v.strictObject(
  { endpoint: WebhookEndpoint },
  "not a member of an endpoint request: endpoint is",
);

export const EndpointOut = v.object({ product: v.string(), endpoint: v.string() });

export const SecretOut = v.object({
  product: v.string(),
  signing_secret: v.pipe(
    v.string(),
    v.description("Standard Webhooks secret (whsec_…). Shown only in this response."),
  ),
  previous_secret_expires_at: v.pipe(
    v.nullable(Timestamp),
    v.description("Until then deliveries are signed with the previous secret too."),
  ),
});

export const DeliveryId = v.pipe(v.string(), v.regex(/^msg_[0-9a-f]{32}$/, "must be a delivery id"));

export const DeliveryParams = v.object({ id: DeliveryId });

export const DeliveriesQuery = v.strictObject(
  {
    ...Pagination.entries,
    status: v.optional(v.picklist(DELIVERY_STATUSES, `must be one of ${DELIVERY_STATUSES.join(", ")}`)),
  },
  NOT_A_PARAMETER,
);

const deliveryEntries = {
  id: v.pipe(DeliveryId, v.description("The `webhook-id`, the same on every attempt.")),
  vendor: Uuid,
  product: v.string(),
  subscription: Uuid,
  type: v.picklist(["CREATED", "MODIFIED", "DELETED"]),
  sequence: Integer,
  status: v.picklist(DELIVERY_STATUSES),
  attempts: Integer,
  next_attempt_at: v.nullable(Timestamp),
  last_status: v.pipe(v.nullable(Integer), v.description("The endpoint's last HTTP status.")),
  last_error: v.nullable(v.string()),
  created_at: Timestamp,
  delivered_at: v.nullable(Timestamp),
};

export const DeliveryOut = v.object(deliveryEntries);

const DeliveriesMeta = v.object({
  ...pageMeta.entries,
  backlog: v.optional(
    v.pipe(
      v.array(
        v.object({
          endpoint: v.pipe(v.nullable(v.string()), v.description("The syndication endpoint; null if unset.")),
          pending: Integer,
          oldest_created_at: Timestamp,
        }),
      ),
      v.description("With `status=pending`: the backlog of each endpoint (every page, whatever the cursor)."),
    ),
  ),
});

export const DeliveryPageOut = v.object({ objects: v.array(DeliveryOut), meta: DeliveriesMeta });

/** The event as it is posted to the vendor's endpoint (spec/syndication-webhooks.md). */
export const EventOut = v.object({
  date: Timestamp,
  entity: v.literal("Subscription"),
  entityUrl: v.pipe(v.string(), v.url()),
  id: Uuid,
  type: v.picklist(["CREATED", "MODIFIED", "DELETED"]),
  sequence: Integer,
});

/** A delivery with its payload; `attempts` lists each attempt instead of counting them. */
export const DeliveryDetailOut = v.object({
  ...deliveryEntries,
  payload: EventOut,
  attempts: v.pipe(
    v.array(
      v.object({
        attempt: Integer,
        at: Timestamp,
        status: v.pipe(v.nullable(Integer), v.description("The endpoint's HTTP status; null if none came.")),
        error: v.nullable(v.string()),
        duration_ms: Integer,
      }),
    ),
    v.description("Each attempt, oldest first."),
  ),
});
