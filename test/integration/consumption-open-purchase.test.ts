import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { consume } from "../../src/app/reads";
import { armFault, disarmFaults } from "../../src/domain/faults";
import { expectBooksBalance, purchaseDiedAt, recoverAll } from "../books";
import {
  call,
  eventually,
  expectOk,
  shardsHeld,
  syndicatedProduct,
  type Tenant,
  tenantWithCatalog,
  unique,
  usageOf,
  vendorEndpoints,
  vendorTokenOf,
} from "../helpers";

/**
 * A consumption report never drains a depletable whose purchase has not taken effect (README,
 * "Consumption"): what it would cover goes to the next one or is `unallocated`. Drawn from it, the
 * traffic would be billed to nobody once the purchase is undone; drained to zero, it would release
 * quota its commission never accepted (that answered 500).
 */

vendorEndpoints();

/** A purchase of a syndicated line and 50 of tx, waiting on its vendor. */
async function waitingOnVendor() {
  const t = await tenantWithCatalog(1, 100);
  const { product, vendorId } = await syndicatedProduct(t);
  const customer = t.customers[0] as string;
  const bought = await call("POST", "/v1/subscriptions/", {
    token: t.partnerKey,
    body: {
      objects: [
        { customer, resource: product, amount: 1, period: "1 week" },
        { customer, resource: "tx", amount: 50 },
      ],
    },
  });
  expect(bought.status).toBe(202);
  const rows = await eventually(async () => {
    const list = await expectOk(call("GET", "/v1/subscriptions/?status=all", { token: t.partnerKey }));
    return list.objects.length === 2 ? list.objects : undefined;
  }, "the purchase's subscriptions");
  const vendorToken = await vendorTokenOf(t, vendorId);
  const report = (amount: number) =>
    call("POST", `/v1/customers/${customer}/consumption`, {
      token: t.partnerKey,
      body: { resource: "tx", amount },
    });
  const vendorSays = (deploymentStatus: string) =>
    expectOk(
      call(
        "PATCH",
        `/api/subscription/${rows.find((o: { resource: string }) => o.resource === product).id}`,
        {
          token: vendorToken,
          body: { deploymentStatus },
        },
      ),
    );
  const tx = rows.find((o: { resource: string }) => o.resource === "tx").id as string;
  return { t, tx, report, vendorSays, operation: bought.headers.get("location") as string };
}

const read = (t: Tenant, id: string) =>
  expectOk(call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey }));

describe("a depletable whose purchase waits on its vendor", () => {
  it("is not drained: a report answers its traffic unallocated, and FAILED then undoes a purchase nothing drew from", async () => {
    const { t, tx, report, vendorSays, operation } = await waitingOnVendor();
    for (const amount of [30, 50]) {
      const r = await report(amount);
      expect(r.status, r.text).toBe(200);
      expect(r.body).toEqual({ objects: [], meta: { unallocated: amount } });
    }
    expect((await read(t, tx)).remaining).toBe(50);
    await vendorSays("FAILED");
    expect((await call("GET", operation, { token: t.partnerKey })).status).toBe(424);
    expect(await read(t, tx)).toMatchObject({ end_reason: "failed", remaining: 50 });
    expect(await usageOf(t, 0, "tx")).toMatchObject({ usage: 0, pending: 0 });
    await expectBooksBalance(t);
  });

  it("is drained once its vendor deployed", async () => {
    const { t, tx, report, vendorSays } = await waitingOnVendor();
    await vendorSays("DEPLOYED");
    const r = await report(50);
    expect(r.status, r.text).toBe(200);
    expect(r.body.meta).toEqual({ unallocated: 0 });
    expect(await read(t, tx)).toMatchObject({ status: "expired", end_reason: "depleted", remaining: 0 });
    expect(await usageOf(t, 0, "tx")).toMatchObject({ usage: 0, pending: 0 });
    await expectBooksBalance(t);
  });
});

describe("a report run again after the purchase it passed over took effect", () => {
  it("takes nothing from it: the report is applied once, as its first run spread it", async () => {
    const { t, tx, vendorSays } = await waitingOnVendor();
    const customer = t.customers[0] as string;
    const buyTx = async (amount: number) =>
      (
        await expectOk(
          call("POST", "/v1/subscriptions/", {
            token: t.partnerKey,
            body: { objects: [{ customer, resource: "tx", amount }] },
          }),
          201,
        )
      ).objects[0].id as string;
    const [second, third] = [await buyTx(3), await buyTx(10)];
    const key = unique("key");
    const report = () =>
      call("POST", `/v1/customers/${customer}/consumption`, {
        token: t.partnerKey,
        headers: { "idempotency-key": key },
        body: { resource: "tx", amount: 5 },
      });
    // The first run passes over the waiting one (3 from the second, 2 from the third), then dies
    // before its answer is kept; the vendor deploys; the retry runs the report again.
    armFault("request.answered");
    expect((await report()).status).toBe(500);
    disarmFaults();
    await vendorSays("DEPLOYED");
    const retry = await report();
    expect(retry.status, retry.text).toBe(200);
    expect(retry.body.meta).toEqual({ unallocated: 0 });
    expect(await read(t, tx)).toMatchObject({ remaining: 50, status: "active" });
    expect(await read(t, second)).toMatchObject({ remaining: 0, end_reason: "depleted" });
    expect(await read(t, third)).toMatchObject({ remaining: 8, status: "inactive" });
    await expectBooksBalance(t);
  });
});

describe("two runs of one report at once, the purchase one passes over taking effect between them", () => {
  it("drain the report once: the later run passes over it too", async () => {
    const { t, tx, vendorSays } = await waitingOnVendor();
    const customer = t.customers[0] as string;
    const later = (
      await expectOk(
        call("POST", "/v1/subscriptions/", {
          token: t.partnerKey,
          body: { objects: [{ customer, resource: "tx", amount: 10 }] },
        }),
        201,
      )
    ).objects[0].id as string;
    const report = unique("report");
    const at = new Date();
    // The second run asks both depletables what they took for the report (nothing yet), then waits
    // before it reads the waiting one to ask whether its purchase took effect.
    const second = shardsHeld("get", { nth: 1 });
    const secondRun = consume(second.env, customer, "tx", 4, at, report);
    await second.reached;
    const first = await consume(env, customer, "tx", 4, at, report);
    expect(first.unallocated).toBe(0);
    await vendorSays("DEPLOYED");
    second.release();
    expect((await secondRun).unallocated).toBe(0);
    expect(await read(t, tx)).toMatchObject({ remaining: 50, status: "active" });
    expect(await read(t, later)).toMatchObject({ remaining: 6 });
    await expectBooksBalance(t);
  });
});

describe("a depletable whose purchase answered at once died before its orders", () => {
  it("is not drained, and the sweep then undoes it", async () => {
    const t = await tenantWithCatalog(1, 100);
    const { ids } = await purchaseDiedAt(t, "purchase.created", ["mem", "tx"]);
    disarmFaults();
    const tx = ids.subscriptions[1] as string;
    const r = await call("POST", `/v1/customers/${t.customers[0]}/consumption`, {
      token: t.partnerKey,
      body: { resource: "tx", amount: 1 },
    });
    expect(r.status, r.text).toBe(200);
    expect(r.body.meta).toEqual({ unallocated: 1 });
    await recoverAll(t);
    expect(await read(t, tx)).toMatchObject({ end_reason: "failed", remaining: 2 });
    await expectBooksBalance(t);
    const charged = await env.DB.prepare("SELECT count(*) AS n FROM charges WHERE subscription_id = ?")
      .bind(tx)
      .first<{ n: number }>();
    expect(charged?.n).toBe(0);
  });
});
