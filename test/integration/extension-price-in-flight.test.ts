import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { armFault, disarmFaults } from "../../src/domain/faults";
import type { OperationMessage } from "../../src/objects/operations-queue";
import { deliver, expectBooksBalance } from "../books";
import { call, expectOk, ownProduct, type Tenant, tenantWithCatalog, unique } from "../helpers";

afterEach(() => disarmFaults());

/**
 * A price change between an extension's acceptance and its run: "A purchase answered 202 is
 * priced as it was accepted, whenever its operation runs", and a keyed request resumed by its
 * retry answers "what the first attempt would have" (README). An extension is a purchase of the
 * chain's next term: it is charged the price of the product when it was accepted.
 */

/** A product of its own (timed, 0.10 EUR per GB and hour) with quota for the tenant's customer, bought once. */
async function boughtOnce(t: Tenant) {
  const { product, put: putProduct } = await ownProduct(t);
  const put = (unit_price: string) => putProduct({ unit_price });
  const first = (
    await expectOk(
      call("POST", "/v1/subscriptions/", {
        token: t.partnerKey,
        body: { objects: [{ customer: t.customers[0], amount: 10, period: "1 week", resource: product }] },
      }),
      201,
    )
  ).objects[0] as { id: string; end_time: string; price: string };
  /** What the calculator quotes now for the term an extension of `first` buys. */
  const quote = async () =>
    (
      await expectOk(
        call("POST", "/v1/subscriptioncalculator/", {
          token: t.partnerKey,
          body: {
            objects: [
              {
                customer: t.customers[0],
                amount: 10,
                resource: product,
                start_time: first.end_time,
                period: "1 week",
              },
            ],
          },
        }),
      )
    ).objects[0].price as string;
  return { product, put, first, quote };
}

/** The charge line of subscription `id`. */
async function chargeOf(t: Tenant, id: string) {
  const lines = await expectOk(call("GET", `/v1/charges?subscription=${id}`, { token: t.partnerKey }));
  return lines.objects as Array<{ amount: string; unit_price: string; kind: string }>;
}

describe("an extension whose product's price changes before it runs", () => {
  it("accepted 202: the operation charges the price it was accepted at, not the new one", async () => {
    const t = await tenantWithCatalog(1, 100);
    const { put, first, quote } = await boughtOnce(t);
    const quoted = await quote();
    const held: OperationMessage[] = [];
    const send = vi.spyOn(env.OPERATIONS, "send").mockImplementation(async (body) => {
      held.push(body as OperationMessage);
      return undefined as never;
    });
    let accepted: Awaited<ReturnType<typeof call>>;
    try {
      accepted = await call("POST", `/v1/subscriptions/${first.id}/action/?do=extend`, {
        token: t.partnerKey,
        body: {},
        headers: { prefer: "respond-async" },
      });
    } finally {
      send.mockRestore();
    }
    expect(accepted.status, accepted.text).toBe(202);
    await put("0.30"); // the operator triples the price while the extension waits in the queue
    expect(await quote()).not.toBe(quoted);
    await deliver(held);
    const done = await call("GET", accepted.headers.get("location") as string, { token: t.partnerKey });
    expect(done.status, done.text).toBe(200);
    expect({
      price: done.body.price,
      charged: (await chargeOf(t, done.body.id)).map((l) => l.amount),
    }).toEqual({
      price: quoted,
      charged: [quoted],
    });
    await expectBooksBalance(t);
  });

  it("keyed, resumed after its first attempt died: the retry charges what the first attempt would have", async () => {
    const t = await tenantWithCatalog(1, 100);
    const { put, first, quote } = await boughtOnce(t);
    const quoted = await quote();
    const key = unique("key");
    const extendIt = () =>
      call("POST", `/v1/subscriptions/${first.id}/action/?do=extend`, {
        token: t.partnerKey,
        body: {},
        headers: { "idempotency-key": key },
      });
    armFault("purchase.issued");
    expect((await extendIt()).status).toBe(500);
    await put("0.30");
    const retry = await extendIt();
    expect(retry.status, retry.text).toBe(200);
    expect({
      price: retry.body.price,
      charged: (await chargeOf(t, retry.body.id)).map((l) => l.amount),
    }).toEqual({
      price: quoted,
      charged: [quoted],
    });
    await expectBooksBalance(t);
  });
});

describe("an extension that would cost more than one term may", () => {
  it("answers 400 at once when asked 202 too, and accepts no operation", async () => {
    const t = await tenantWithCatalog(1, 100);
    const { product } = await ownProduct(t, { prefix: "big", unitPrice: "1000.00", limit: 10_000 });
    const first = (
      await expectOk(
        call("POST", "/v1/subscriptions/", {
          token: t.partnerKey,
          body: {
            objects: [{ customer: t.customers[0], amount: 10_000, period: "1 week", resource: product }],
          },
        }),
        201,
      )
    ).objects[0] as { id: string };
    const extendIt = (headers: Record<string, string>) =>
      call("POST", `/v1/subscriptions/${first.id}/action/?do=extend`, {
        token: t.partnerKey,
        body: { end_time: "3100-01-01T12:00:00Z" },
        headers,
      });
    const now = await extendIt({});
    expect(now.status, now.text).toBe(400);
    const queued = await extendIt({ prefer: "respond-async" });
    expect({ status: queued.status, points: queued.body.errors }).toEqual({
      status: 400,
      points: now.body.errors,
    });
    const operations = await expectOk(call("GET", "/v1/operations", { token: t.partnerKey }));
    expect(operations.objects).toEqual([]);
    await expectBooksBalance(t);
  });
});
