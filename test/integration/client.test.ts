import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { createStratusClient } from "../../client";
import { QUOTA_EXCEEDED, runMainFlow } from "../../client/examples/main-flow";
import { openApiDocument } from "../../src/http/openapi";
import { routes } from "../../src/http/routes";
import { checkContract } from "../contract";
import { tenant, withCatalog } from "../helpers";

/**
 * The typed client (client/) and its example program, run against the Worker: the client's fetch
 * is the Worker's own, with real bindings; every answer it gets is checked against the document,
 * as call() checks the rest of the suite's. The operations queue runs the async purchase by itself.
 */

const BASE = "http://stratus.test";

async function workerFetch(request: Request): Promise<Response> {
  const response = await exports.default.fetch(request);
  const { status, headers } = response;
  checkContract(request.method, new URL(request.url), {
    status,
    headers,
    text: await response.clone().text(),
  });
  return response;
}

/** The problem schemas POST /v1/subscriptions declares for `status`. */
function declaredProblems(status: number): string[] {
  const document: any = openApiDocument(routes, BASE);
  const ref: string = document.paths["/v1/subscriptions"].post.responses[String(status)].$ref;
  const response = document.components.responses[ref.replace("#/components/responses/", "")];
  const schema = response.content["application/problem+json"].schema;
  return (schema.anyOf ?? [schema]).map((s: { $ref: string }) => s.$ref);
}

describe("the typed client", () => {
  it("runs the main flow: customer, purchase, async purchase to its 201, list, holding, a typed refusal", async () => {
    const t = await tenant({ customers: 0 });
    await withCatalog(t);
    const client = (apiKey: string) => createStratusClient({ baseUrl: BASE, apiKey, fetch: workerFetch });
    const waits: number[] = [];

    const flow = await runMainFlow(
      { partner: client(t.partnerKey), operator: client(t.operator) },
      {
        product: "cpu",
        limit: 10,
        amount: 2,
        sleep: async (ms) => {
          waits.push(ms);
          await new Promise((resolve) => setTimeout(resolve, Math.min(ms, 200)));
        },
      },
    );

    expect(flow.customer).toMatchObject({ partner: t.partnerId, name: "Main Flow Customer" });
    expect(flow.quotaResource).toBe("stratus.cpu");

    const [bought] = flow.purchase.subscriptions;
    expect(flow.purchase.subscriptions).toHaveLength(1);
    expect(bought).toMatchObject({ customer: flow.customer.id, product: "cpu", amount: 2, status: "active" });
    expect(flow.purchase.location).toContain(bought?.id);

    const { accepted, location, status, subscriptions, polls } = flow.asyncPurchase;
    expect(accepted).toMatchObject({ kind: "purchase", status: "queued", result_status: null });
    expect(location).toBe(`/v1/operations/${accepted.opRef}`);
    expect(status).toBe(201);
    expect(polls).toBeGreaterThanOrEqual(1);
    expect(waits.every((ms) => ms >= 1000)).toBe(true); // Retry-After, in seconds, honoured
    expect(subscriptions).toHaveLength(1);
    expect(subscriptions[0]).toMatchObject({ customer: flow.customer.id, product: "cpu", amount: 2 });

    expect(flow.listed.map((s) => s.id).sort()).toEqual([bought?.id, subscriptions[0]?.id].sort());
    expect(flow.holding).toMatchObject({
      holder: flow.customer.id,
      resource: "stratus.cpu",
      limit: 10,
      usage: 4,
      pending: 0,
    });

    const { problem } = flow.refusal;
    expect(problem).toMatchObject({
      type: QUOTA_EXCEEDED,
      status: flow.refusal.status,
      customer: flow.customer.id,
      quota_resource: "stratus.cpu",
      limit: 10,
      usage: 4,
      requested: 7,
    });
    expect(declaredProblems(flow.refusal.status)).toContain("#/components/schemas/QuotaExceededProblem");
  });

  it("stops the flow with the answer when a call is refused", async () => {
    const t = await tenant({ customers: 0 });
    await withCatalog(t);
    const client = (apiKey: string) => createStratusClient({ baseUrl: BASE, apiKey, fetch: workerFetch });
    // The partner's key where the operator's is needed: granting the limit answers 403.
    await expect(
      runMainFlow({ partner: client(t.partnerKey), operator: client(t.partnerKey) }),
    ).rejects.toThrow(/grant the limit: expected 200, got 403/);
  });

  it("sends back the latest X-D1-Bookmark it was answered: it reads its own writes from any replica", async () => {
    const t = await tenant({ customers: 0 });
    const sent: Array<string | null> = [];
    const answered: Array<string | null> = [];
    const client = createStratusClient({
      baseUrl: BASE,
      apiKey: t.partnerKey,
      fetch: async (request) => {
        sent.push(request.headers.get("x-d1-bookmark"));
        const response = await workerFetch(request);
        answered.push(response.headers.get("x-d1-bookmark"));
        return response;
      },
    });
    const created = await client.POST("/v1/customers", { body: { name: "Bookmarked", email: null } });
    expect(created.response.status).toBe(201);
    const listed = await client.GET("/v1/customers");
    expect(listed.data?.objects.map((c) => c.id)).toContain(created.data?.id);
    const [write, read] = answered;
    expect(write).toMatch(/^[0-9a-f]{8}-/);
    expect(sent).toEqual([null, write]);
    expect(read! >= write!).toBe(true);
  });
});
