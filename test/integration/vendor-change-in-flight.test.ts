import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { runOperation } from "../../src/app/operations";
import { findProductById, upsertProduct } from "../../src/db/products";
import type { OperationMessage } from "../../src/objects/operations-queue";
import { deliver } from "../books";
import {
  call,
  expectOk,
  type Reply,
  shardsHeld,
  syndicatedProduct,
  syndicatedProductBody,
  type Tenant,
  tenant,
  usageOf,
  vendorEndpoints,
  vendorTokenOf,
  withCatalog,
} from "../helpers";

const hostsHit: string[] = [];
vendorEndpoints((url) => {
  hostsHit.push(url.host);
  return new Response(null, { status: 204 });
});

/**
 * A product's vendor changed while a purchase of it (answered 202) was on its way, before anything
 * of it was sold: the purchase is not bought, so its buyer and order never reach the new vendor
 * (README, "Syndication").
 */
/** One of `product` bought for the first customer (202), its operation's message held back, as a queue does for a moment. */
async function boughtWithMessageHeld(
  t: Tenant,
  product: string,
): Promise<{ bought: Reply; held: OperationMessage[] }> {
  const held: OperationMessage[] = [];
  const send = vi.spyOn(env.OPERATIONS, "send").mockImplementation(async (body) => {
    held.push(body as OperationMessage);
    return undefined as never;
  });
  try {
    const bought = await call("POST", "/v1/subscriptions/", {
      token: t.partnerKey,
      body: { objects: [{ customer: t.customers[0], resource: product, amount: 1, period: "1 month" }] },
    });
    expect(bought.status).toBe(202);
    return { bought, held };
  } finally {
    send.mockRestore();
  }
}

/** The operator's PUT giving `product` another vendor and endpoint. */
const movedTo = (t: Tenant, product: string, vendor: string, endpoint: string) =>
  call("PUT", `/v1/products/${product}`, {
    token: t.operator,
    body: syndicatedProductBody(product, vendor, endpoint),
  });

describe("a product whose vendor changes while a purchase of it is on its way", () => {
  it("is not bought: the operation answers 409, nothing is held, and neither vendor is told", async () => {
    const t = await tenant({ customers: 1 });
    await withCatalog(t);
    const { product, vendorId } = await syndicatedProduct(t, "vendor-a.example");
    const tokenA = await vendorTokenOf(t, vendorId);
    const { bought, held } = await boughtWithMessageHeld(t, product);
    const other = await expectOk(
      call("POST", "/v1/vendors", { token: t.operator, body: { name: "B" } }),
      201,
    );
    const moved = await movedTo(t, product, other.id, "https://vendor-b.example/hooks");
    // Nothing of it was sold yet: the operator may move it.
    expect(moved.status).toBe(200);
    await deliver(held);
    const operation = await call("GET", bought.headers.get("location") as string, { token: t.partnerKey });
    expect(operation.status, operation.text).toBe(409);
    expect(operation.body.detail).toContain("vendor");
    expect((await expectOk(call("GET", "/v1/webhooks/deliveries", { token: tokenA }))).objects).toEqual([]);
    expect(hostsHit).toEqual([]);
    expect(await usageOf(t, 0, product)).toMatchObject({ usage: 0, pending: 0 });
    expect(
      (await expectOk(call("GET", "/v1/subscriptions/?status=all", { token: t.partnerKey }))).objects,
    ).toEqual([]);
  });

  it("is not bought either when the change was made on another instance, whose catalog this one keeps for 30 s", async () => {
    const t = await tenant({ customers: 1 });
    await withCatalog(t);
    const { product, vendorId } = await syndicatedProduct(t, "vendor-c.example");
    // Planned from the catalog this instance now keeps.
    const { bought, held } = await boughtWithMessageHeld(t, product);
    const other = await expectOk(
      call("POST", "/v1/vendors", { token: t.operator, body: { name: "D" } }),
      201,
    );
    // What another instance's PUT /v1/products writes: this instance's kept catalog is not told.
    await env.DB.prepare("UPDATE products SET vendor_id = ?, endpoint = ? WHERE id = ?")
      .bind(other.id, "https://vendor-d.example/hooks", product)
      .run();
    await deliver(held);
    const operation = await call("GET", bought.headers.get("location") as string, { token: t.partnerKey });
    expect(operation.status, operation.text).toBe(409);
    expect(hostsHit).not.toContain("vendor-d.example");
    expect(await usageOf(t, 0, product)).toMatchObject({ usage: 0, pending: 0 });
    expect(vendorId).not.toBe(other.id);
  });

  it("keeps its vendor while the purchase's run, past its read of the vendor, is buying it", async () => {
    const t = await tenant({ customers: 1 });
    await withCatalog(t);
    const { product, vendorId } = await syndicatedProduct(t, "vendor-e.example");
    const tokenA = await vendorTokenOf(t, vendorId);
    const { bought, held } = await boughtWithMessageHeld(t, product);
    // The run has read the vendor (A) and is about to create the subscription.
    const stall = shardsHeld("create");
    const run = runOperation(stall.env, (held[0] as OperationMessage & { opRef: string }).opRef);
    await stall.reached;
    const other = await expectOk(
      call("POST", "/v1/vendors", { token: t.operator, body: { name: "F" } }),
      201,
    );
    const moved = await movedTo(t, product, other.id, "https://vendor-f.example/hooks");
    // The write checks it again, in its own statement: one whose request checked a moment before
    // the run began writes nothing either.
    const { version: _, ...asStored } = (await findProductById(env, product)) as NonNullable<
      Awaited<ReturnType<typeof findProductById>>
    >;
    expect(await upsertProduct(env, { ...asStored, vendorId: other.id })).toBeUndefined();
    expect((await findProductById(env, product))?.vendorId).toBe(vendorId);
    stall.release();
    await run;
    // Before, the PUT answered 200: the purchase, bought through A, had its event posted to F's
    // endpoint (signed with F's secret), and F could read its order and buyer.
    expect({ status: moved.status, point: moved.body.errors?.[0]?.point }).toEqual({
      status: 409,
      point: "/vendor",
    });
    const tokenF = await vendorTokenOf(t, other.id);
    const sub = (await expectOk(call("GET", "/v1/subscriptions/?status=all", { token: t.partnerKey })))
      .objects[0];
    expect((await call("GET", `/api/order/${sub.order}`, { token: tokenF })).status).toBe(404);
    expect((await call("GET", `/api/user/${t.customers[0]}`, { token: tokenF })).status).toBe(404);
    // A deploys it, and the purchase completes through A.
    await expectOk(
      call("PATCH", `/api/subscription/${sub.id}`, { token: tokenA, body: { deploymentStatus: "DEPLOYED" } }),
    );
    expect(
      (await call("GET", bought.headers.get("location") as string, { token: t.partnerKey })).status,
    ).toBe(201);
    expect(hostsHit).not.toContain("vendor-f.example");
  });
});
