import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { OperationPayload } from "../../src/app/intents";
import { newOpRef, requeueStalledOperations, runOperation } from "../../src/app/operations";
import { createOperation, findOperation } from "../../src/db/operations";
import { subscriptionIdBeside, uuidv7 } from "../../src/domain/ids";
import { recoveryBoundMs } from "../../src/domain/recovery";
import { EVERYTHING } from "../../src/domain/scope";
import { subscriptionObject } from "../../src/objects/subscription-object";
import { deliver, expectBooksBalance } from "../books";
import {
  call,
  eventually,
  expectOk,
  ledgersHeld,
  syndicatedProduct,
  type Tenant,
  tenantWithCatalog,
  vendorEndpoints,
  vendorTokenOf,
} from "../helpers";

vendorEndpoints();

/** A syndicated subscription its vendor has deployed. */
async function deployed(t: Tenant) {
  const { product, vendorId } = await syndicatedProduct(t);
  const vendorToken = await vendorTokenOf(t, vendorId);
  const r = await call("POST", "/v1/subscriptions/", {
    token: t.partnerKey,
    body: { objects: [{ customer: t.customers[0], resource: product, amount: 2, period: "1 week" }] },
  });
  expect(r.status, r.text).toBe(202);
  const sub = await eventually(async () => {
    const list = await expectOk(call("GET", "/v1/subscriptions/?status=all", { token: t.partnerKey }));
    return list.objects[0];
  }, "the subscription");
  await expectOk(
    call("PATCH", `/api/subscription/${sub.id}`, {
      token: vendorToken,
      body: { deploymentStatus: "DEPLOYED" },
    }),
  );
  await eventually(async () => {
    const op = await call("GET", r.headers.get("location") as string, { token: t.partnerKey });
    return op.status === 201 ? op : undefined;
  }, "the purchase");
  return { product, vendorToken, sub };
}

/** An extend operation stored (not queued): the test runs it. */
async function extendOperation(t: Tenant, subscription: string) {
  const opRef = newOpRef();
  const payload: OperationPayload = {
    kind: "extend",
    partnerId: t.partnerId,
    at: new Date().toISOString(),
    subscription,
    customerId: t.customers[0] as string,
    ids: { subscription: subscriptionIdBeside(subscription), order: uuidv7() },
  };
  await createOperation(env, {
    opRef,
    partnerId: t.partnerId,
    customerId: t.customers[0] as string,
    kind: "extend",
    payload: payload as never,
    now: new Date(),
  });
  return { opRef, payload };
}

describe("an extend operation run twice at once", () => {
  it("by its own run and a vendor's report on the new term extends once, with one answer", async () => {
    const t = await tenantWithCatalog(1, 100);
    const { vendorToken, sub } = await deployed(t);
    const { opRef, payload } = await extendOperation(t, sub.id);
    // The first run holds at accepting the extension's commission: the term exists by then.
    const held = ledgersHeld(["settleReferenced"], "before");
    const first = runOperation(held.env, opRef);
    await held.reached;
    const ext = payload.kind === "extend" ? payload.ids.subscription : "";
    const patched = await call("PATCH", `/api/subscription/${ext}`, {
      token: vendorToken,
      body: { syndicatedEndpoints: ["https://x.example/1"] },
    });
    expect(patched.status, patched.text).toBe(200);
    const between = await call("GET", `/v1/operations/${opRef}`, { token: t.partnerKey });
    held.release();
    await first;
    const done = await call("GET", `/v1/operations/${opRef}`, { token: t.partnerKey });
    expect(done.status, done.text).toBe(200);
    expect(done.body.id).toBe(ext);
    if (between.status !== 202) expect(between.body).toEqual(done.body);
    const again = await call("GET", `/v1/operations/${opRef}`, { token: t.partnerKey });
    expect(again.body).toEqual(done.body);
    const root = await expectOk(call("GET", `/v1/subscriptions/${sub.id}/`, { token: t.partnerKey }));
    expect(root.descendants).toEqual([ext]);
    expect((await findOperation(env, opRef, EVERYTHING))?.status).toBe("succeeded");
    await expectBooksBalance(t);
  });
});

describe("an extend operation run again by its vendor's UNDEPLOYED", () => {
  it("while it runs extends once, with one answer", async () => {
    const t = await tenantWithCatalog(1, 100);
    const { vendorToken, sub } = await deployed(t);
    const { opRef, payload } = await extendOperation(t, sub.id);
    const held = ledgersHeld(["settleReferenced"], "before");
    const first = runOperation(held.env, opRef);
    await held.reached;
    const ext = payload.kind === "extend" ? payload.ids.subscription : "";
    const patched = await call("PATCH", `/api/subscription/${ext}`, {
      token: vendorToken,
      body: { deploymentStatus: "UNDEPLOYED" },
    });
    expect(patched.status, patched.text).toBe(200);
    const between = await call("GET", `/v1/operations/${opRef}`, { token: t.partnerKey });
    held.release();
    await first;
    const done = await call("GET", `/v1/operations/${opRef}`, { token: t.partnerKey });
    if (between.status !== 202) expect(between.body).toEqual(done.body);
    expect((await call("GET", `/v1/operations/${opRef}`, { token: t.partnerKey })).body).toEqual(done.body);
    const root = await expectOk(call("GET", `/v1/subscriptions/${sub.id}/`, { token: t.partnerKey }));
    expect(done.status, done.text).toBe(200);
    expect(root.descendants).toEqual([ext]);
    await expectBooksBalance(t);
  });
});

describe("a syndicated purchase run three times at once", () => {
  it("by its run, its vendor's report and the sweep buys once, with one answer", async () => {
    const t = await tenantWithCatalog(1, 100);
    const { product, vendorId } = await syndicatedProduct(t);
    const vendorToken = await vendorTokenOf(t, vendorId);
    const r = await call("POST", "/v1/subscriptions/", {
      token: t.partnerKey,
      body: { objects: [{ customer: t.customers[0], resource: product, amount: 2, period: "1 week" }] },
    });
    expect(r.status, r.text).toBe(202);
    const location = r.headers.get("location") as string;
    const opRef = location.split("/").at(-1) as string;
    const sub = await eventually(async () => {
      const op = await findOperation(env, opRef, EVERYTHING);
      if (!op?.waiting) return undefined;
      const list = await expectOk(call("GET", "/v1/subscriptions/?status=all", { token: t.partnerKey }));
      return list.objects[0];
    }, "the purchase waiting");
    // The vendor's DEPLOYED lands; a run holds at accepting the purchase's commission.
    await subscriptionObject(env, sub.id).setDeployment({ deploymentStatus: "DEPLOYED" });
    const held = ledgersHeld(["settleReferenced"], "before");
    const first = runOperation(held.env, opRef);
    await held.reached;
    // The vendor reports again, and the sweep finds the run stalled.
    const patched = await call("PATCH", `/api/subscription/${sub.id}`, {
      token: vendorToken,
      body: { syndicatedEndpoints: ["https://x.example/1"] },
    });
    expect(patched.status, patched.text).toBe(200);
    await requeueStalledOperations(env, new Date(Date.now() + recoveryBoundMs(env) + 1_000));
    await deliver([{ opRef }]);
    const between = await call("GET", location, { token: t.partnerKey });
    held.release();
    await first;
    const done = await call("GET", location, { token: t.partnerKey });
    expect(done.status, done.text).toBe(201);
    if (between.status !== 202) expect(between.body).toEqual(done.body);
    expect((await call("GET", location, { token: t.partnerKey })).body).toEqual(done.body);
    const list = await expectOk(call("GET", "/v1/subscriptions/?status=all", { token: t.partnerKey }));
    expect(list.objects).toHaveLength(1);
    await expectBooksBalance(t);
  });
});
