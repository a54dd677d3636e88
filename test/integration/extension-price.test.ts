import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { RenewalMessage } from "../../src/app/renewals";
import worker from "../../src/index";
import { expectBooksBalance } from "../books";
import { basic, call, customerKeyed, expectOk, ownProduct, type Tenant, tenant } from "../helpers";

/**
 * An extension "is actually just another subscription that is linked to the original", and the
 * calculator "is identical to the subscriptions call" (subscriptions-api.md): a new term of a
 * chain, by hand or renewed, costs what the calculator quotes for it, at today's price.
 */
describe("extension pricing", () => {
  it("an extension (and so a renewal) is charged what the calculator quotes for its term, at today's price", async () => {
    const t = await customerKeyed();
    const { product, put: putProduct } = await ownProduct(t);
    const put = (unit_price: string) => putProduct({ unit_price });
    const auth = basic("me", t.customerKey);
    const first = (
      await expectOk(
        call("POST", "/v1/subscriptions/", {
          headers: auth,
          body: { objects: [{ amount: 10, period: "1 month", resource: product }] },
        }),
        201,
      )
    ).objects[0];

    await put("0.20"); // the operator doubles the price after the first purchase

    // The calculator quoting the very term the extension will buy (start = chain end, 1 month).
    const quote = await expectOk(
      call("POST", "/v1/subscriptioncalculator/", {
        headers: auth,
        body: { objects: [{ amount: 10, resource: product, start_time: first.end_time, period: "1 month" }] },
      }),
    );
    const extended = await expectOk(
      call("POST", `/v1/subscriptions/${first.id}/action/?do=extend`, { headers: auth, body: {} }),
    );
    expect(extended.start_time).toBe(quote.objects[0].start_time);
    expect(extended.end_time).toBe(quote.objects[0].end_time);
    expect(extended.price).toBe(quote.objects[0].price);
    expect(Number(extended.price)).toBeGreaterThan(Number(first.price));
  });

  it("a chain whose product is now sold per unit consumed is not extended nor renewed at that price per hour", async () => {
    const t: Tenant = await tenant({ customers: 1 });
    const { product, put } = await ownProduct(t, { unitPrice: "0.03", limit: 10 });
    const buy = async (auto_renew: boolean) =>
      (
        await expectOk(
          call("POST", "/v1/subscriptions/", {
            token: t.partnerKey,
            body: {
              objects: [
                { customer: t.customers[0], resource: product, amount: 1, period: "1 week", auto_renew },
              ],
            },
          }),
          201,
        )
      ).objects[0];
    const byHand = await buy(false);
    const renewing = await buy(true);

    // The operator now sells the product per GB consumed, at 5.00 a GB: not a price per hour.
    await put({ kind: "depletable", unit_price: "5.00" });

    // A week of it at 5.00 an hour would be 840.00, for what was bought at 0.03 an hour.
    const extended = await call("POST", `/v1/subscriptions/${byHand.id}/action/?do=extend`, {
      token: t.partnerKey,
      body: {},
    });
    expect(extended.status, JSON.stringify(extended.body)).toBe(409);
    expect(extended.body.detail).toMatch(/per unit consumed/);
    // Asked to answer later, it is refused at once: no operation is accepted that could only fail.
    const later = await call("POST", `/v1/subscriptions/${byHand.id}/action/?do=extend`, {
      token: t.partnerKey,
      body: {},
      headers: { prefer: "respond-async" },
    });
    expect(later.status, later.text).toBe(409);

    // The cron's renewal cannot buy it either: the term expires at its end and says why.
    const batch = createMessageBatch<RenewalMessage>("stratus-renewals", [
      {
        id: `renewal-${renewing.id}`,
        timestamp: new Date(),
        attempts: 1,
        body: { subscription: renewing.id, at: renewing.end_time },
      },
    ]);
    await worker.queue(batch, env);
    await getQueueResult(batch, createExecutionContext());
    const after = await expectOk(call("GET", `/v1/subscriptions/${renewing.id}/`, { token: t.partnerKey }));
    expect(after).toMatchObject({ status: "expired", descendants: [] });
    expect(after.renewal_error).toMatch(/per unit consumed/);

    const lines = await env.DB.prepare(
      "SELECT subscription_id, kind, amount_minor FROM charges WHERE partner_id = ?",
    )
      .bind(t.partnerId)
      .all();
    expect(lines.results.map((l) => l.kind).sort()).toEqual(["purchase", "purchase"]);
    await expectBooksBalance(t);
  });
});
