import type { MethodResponse } from "openapi-fetch";
import type { Schema, StratusClient } from "../index.ts";

/**
 * The README's main flow, as a partner's program runs it through the typed client: a customer, a
 * purchase (201), an asynchronous purchase (202, polled until the operation answers its 201), the
 * customer's subscriptions, its holding, and a purchase over quota read as a typed problem.
 * Nothing here is cast: every body is narrowed from what openapi.json declares.
 */

/**
 * A subscription as the client reads it, not `Schema<"Subscription">`: openapi-fetch's response
 * types leave out a member whose only value is null (`subscribed_object`; openapi-typescript#2717).
 */
type SubscriptionPage = MethodResponse<StratusClient, "get", "/v1/subscriptions">;
type Subscription = SubscriptionPage["objects"][number];
type QuotaExceededProblem = Schema<"QuotaExceededProblem">;

/** The problem type of a quota refusal; the compiler checks it against the document's constant. */
export const QUOTA_EXCEEDED: QuotaExceededProblem["type"] = "https://stratus.dev/problems/quota-exceeded";

export interface MainFlowClients {
  /** With a partner's key: everything the partner does. */
  partner: StratusClient;
  /** With an operator key: only to grant the new customer its limit, which partners cannot set. */
  operator: StratusClient;
}

export interface MainFlowOptions {
  /** The product bought, by id or alias (default `cpu`, in the demo catalog). */
  product?: string;
  /** The new customer's limit on the product's quota resource (default 10). */
  limit?: number;
  /** The amount of each of the two purchases (default 2). */
  amount?: number;
  /** How many times to poll the operation before giving up (default 60). */
  maxPolls?: number;
  /** Waits between polls; the default sleeps. */
  sleep?: (ms: number) => Promise<void>;
  /** Told each step as it is done. */
  log?: (line: string) => void;
}

export interface MainFlowResult {
  customer: Schema<"Customer">;
  quotaResource: string;
  purchase: { location: string; subscriptions: Subscription[] };
  asyncPurchase: {
    accepted: Schema<"Operation">;
    location: string;
    polls: number;
    status: number;
    subscriptions: Subscription[];
  };
  /** The customer's subscriptions of the product, as the list answers them. */
  listed: Subscription[];
  holding: Schema<"Holding">;
  refusal: { status: number; problem: QuotaExceededProblem };
}

/** What a call resolves to: `data` on a 2xx, `error` (the problem body) otherwise. */
interface Answer<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

/** The body of a 2xx answer of the expected status; anything else stops the flow, saying what came. */
async function expect<T>(what: string, status: number, call: Promise<Answer<T>>) {
  const { data, error, response } = await call;
  if (data === undefined || response.status !== status) {
    throw new Error(`${what}: expected ${status}, got ${response.status} ${JSON.stringify(error ?? data)}`);
  }
  return { data, response };
}

function header(response: Response, name: string): string {
  const value = response.headers.get(name);
  if (value === null) throw new Error(`${response.status} without ${name}`);
  return value;
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export async function runMainFlow(
  { partner, operator }: MainFlowClients,
  options: MainFlowOptions = {},
): Promise<MainFlowResult> {
  const product = options.product ?? "cpu";
  const limit = options.limit ?? 10;
  const amount = options.amount ?? 2;
  const log = options.log ?? (() => {});
  const sleep = options.sleep ?? defaultSleep;

  const { data: catalogued } = await expect(
    `product ${product}`,
    200,
    partner.GET("/v1/products/{id}", { params: { path: { id: product } } }),
  );
  const quotaResource = catalogued.quota_resource;

  const { data: customer } = await expect(
    "create a customer",
    201,
    partner.POST("/v1/customers", { body: { name: "Main Flow Customer", email: "main-flow@example.org" } }),
  );
  log(`customer ${customer.id}`);
  await expect(
    "grant the limit",
    200,
    operator.PUT("/v1/customers/{id}/quotas", {
      params: { path: { id: customer.id } },
      body: { source: "system", resource: quotaResource, limit },
    }),
  );
  log(`limit ${limit} on ${quotaResource}`);

  const order = { objects: [{ customer: customer.id, resource: product, amount, period: "1 month" }] };
  const bought = await expect("buy", 201, partner.POST("/v1/subscriptions", { body: order }));
  if (!("objects" in bought.data)) throw new Error("a 201 purchase without its subscriptions");
  const purchase = { location: header(bought.response, "Location"), subscriptions: bought.data.objects };
  log(`bought ${purchase.subscriptions.map((s) => s.id).join(", ")} (201, ${purchase.location})`);

  const accepted = await expect(
    "buy asynchronously",
    202,
    partner.POST("/v1/subscriptions", { params: { header: { Prefer: "respond-async" } }, body: order }),
  );
  if (!("opRef" in accepted.data)) throw new Error("a 202 without its operation");
  const operation = accepted.data;
  const location = header(accepted.response, "Location");
  log(`accepted as ${operation.opRef} (202, ${location})`);
  let retryAfter = Number(header(accepted.response, "Retry-After"));
  let polls = 0;
  let subscriptions: Subscription[] | null = null;
  let finalStatus = 0;
  while (subscriptions === null) {
    if (polls === (options.maxPolls ?? 60)) throw new Error(`${operation.opRef} still running`);
    await sleep(retryAfter * 1000);
    polls++;
    const { data, error, response } = await partner.GET("/v1/operations/{opRef}", {
      params: { path: { opRef: operation.opRef } },
    });
    if (data === undefined) throw new Error(`${operation.opRef} failed: ${JSON.stringify(error)}`);
    if ("opRef" in data) {
      retryAfter = Number(header(response, "Retry-After"));
      log(`  ${data.status}`);
    } else if ("objects" in data && response.status === 201) {
      subscriptions = data.objects;
      finalStatus = response.status;
    } else {
      throw new Error(`${operation.opRef} answered ${response.status}, not a purchase`);
    }
  }
  log(`the operation answered ${finalStatus}: ${subscriptions.map((s) => s.id).join(", ")}`);

  const listed: Subscription[] = [];
  let cursor: string | null = null;
  do {
    // Annotated: the loop's `cursor` makes the inferred type circular.
    const { data: page }: { data: SubscriptionPage } = await expect(
      "list subscriptions",
      200,
      partner.GET("/v1/subscriptions", {
        params: { query: { resource: product, limit: 500, ...(cursor === null ? {} : { cursor }) } },
      }),
    );
    listed.push(...page.objects.filter((s) => s.customer === customer.id));
    cursor = page.meta.next_cursor;
  } while (cursor !== null);
  log(`listed ${listed.length} subscriptions of ${product} for the customer`);

  const { data: holdings } = await expect(
    "read the holdings",
    200,
    partner.GET("/v1/customers/{id}/quotas", { params: { path: { id: customer.id } } }),
  );
  const holding = holdings.objects.find((h) => h.resource === quotaResource);
  if (holding === undefined) throw new Error(`no holding of ${quotaResource}`);
  log(`${quotaResource}: usage ${holding.usage} of ${holding.limit}`);

  const over = holding.limit - holding.usage + 1;
  const refused = await partner.POST("/v1/subscriptions", {
    body: { objects: [{ customer: customer.id, resource: product, amount: over, period: "1 month" }] },
  });
  const problem = refused.error;
  if (problem === undefined || !("quota_resource" in problem) || problem.type !== QUOTA_EXCEEDED) {
    throw new Error(`buying ${over} over the limit: ${refused.response.status} ${JSON.stringify(problem)}`);
  }
  log(`refused (${refused.response.status} ${problem.type}): ${problem.detail}`);

  return {
    customer,
    quotaResource,
    purchase,
    asyncPurchase: { accepted: operation, location, polls, status: finalStatus, subscriptions },
    listed,
    holding,
    refusal: { status: refused.response.status, problem },
  };
}
