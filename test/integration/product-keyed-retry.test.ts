import { afterEach, describe, expect, it } from "vitest";
import { armFault, disarmFaults } from "../../src/domain/faults";
import { call, ownProduct, tenant, unique } from "../helpers";

/**
 * A keyed `PUT /v1/products/{id}` without If-Match, sent again (its client lost the answer) after
 * another PUT changed the product. Its answer is never kept (it may show a secret), so the same
 * request runs again: before, written as sent, it set the price (or anything else) back to what
 * the first attempt wrote, undoing the later change unseen, and every purchase from then on was
 * charged the old price. The retry now writes only at the version its first attempt found.
 */

afterEach(disarmFaults);

const asSent = (body: Record<string, unknown>) => {
  const { id: _id, delivery: _delivery, vendor: _vendor, ...rest } = body;
  return rest;
};

describe("a keyed PUT /v1/products/{id} without If-Match, sent again", () => {
  it("does not undo a change another PUT made since: 409, the later change kept", async () => {
    const t = await tenant({ customers: 1 });
    const { product } = await ownProduct(t);
    const path = `/v1/products/${product}`;
    const read = asSent((await call("GET", path, { token: t.operator })).body);
    const mine = {
      token: t.operator,
      body: { ...read, unit_price: "0.25" },
      headers: { "idempotency-key": `reprice-${product}` },
    };
    expect((await call("PUT", path, mine)).status).toBe(200);
    const theirs = await call("PUT", path, { token: t.operator, body: { ...read, unit_price: "0.30" } });
    expect(theirs.status, theirs.text).toBe(200);
    const again = await call("PUT", path, mine);
    expect(again.status, again.text).toBe(409);
    expect((await call("GET", path, { token: t.operator })).body.unit_price).toBe("0.30");
  });

  it("nor one made after it created the product", async () => {
    const t = await tenant({ customers: 1 });
    const { product: model } = await ownProduct(t);
    const base = asSent((await call("GET", `/v1/products/${model}`, { token: t.operator })).body);
    const path = `/v1/products/${unique("new")}`;
    const mine = { token: t.operator, body: base, headers: { "idempotency-key": `create-${path}` } };
    expect((await call("PUT", path, mine)).status).toBe(200);
    expect((await call("PUT", path, { token: t.operator, body: { ...base, name: "theirs" } })).status).toBe(
      200,
    );
    const again = await call("PUT", path, mine);
    expect(again.status, again.text).toBe(409);
    expect((await call("GET", path, { token: t.operator })).body.name).toBe("theirs");
  });

  it("answers its change as done when nothing changed since, or its first attempt died after writing", async () => {
    const t = await tenant({ customers: 1 });
    const { product } = await ownProduct(t);
    const path = `/v1/products/${product}`;
    const read = asSent((await call("GET", path, { token: t.operator })).body);
    const request = (key: string, price: string) => ({
      token: t.operator,
      body: { ...read, unit_price: price },
      headers: { "idempotency-key": `${key}-${product}` },
    });
    const first = await call("PUT", path, request("twice", "0.40"));
    expect(first.status).toBe(200);
    const again = await call("PUT", path, request("twice", "0.40"));
    expect(again.status, again.text).toBe(200);
    expect(again.body).toEqual(first.body);
    armFault("request.answered");
    expect((await call("PUT", path, request("died", "0.45"))).status).toBe(500);
    const retried = await call("PUT", path, request("died", "0.45"));
    expect(retried.status, retried.text).toBe(200);
    expect(retried.body.unit_price).toBe("0.45");
  });
});
