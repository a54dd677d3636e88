import { describe, expect, it, vi } from "vitest";
import {
  call,
  eventually,
  expectOk,
  syndicatedProduct,
  type Tenant,
  tenantWithCatalog,
  vendorEndpoints,
  vendorTokenOf,
} from "../helpers";

vendorEndpoints();

const DAY = 86_400_000;

/**
 * The term a syndicated end_time purchase gets when its vendor deploys it after it should have
 * started (README, "Syndication"): as long as it was bought for, never longer, and never past the
 * latest end a term can have (a review of 2026-12-03 found both).
 */

/** Buys `product` with `end_time`, then has its vendor deploy it `lateMs` after its start. */
async function deployedLate(t: Tenant, endTime: string, lateMs: number) {
  const { product, vendorId } = await syndicatedProduct(t);
  const vendorToken = await vendorTokenOf(t, vendorId);
  const r = await call("POST", "/v1/subscriptions/", {
    token: t.partnerKey,
    body: { objects: [{ customer: t.customers[0], resource: product, amount: 2, end_time: endTime }] },
  });
  expect(r.status, r.text).toBe(202);
  const sub = await eventually(async () => {
    const list = await expectOk(call("GET", "/v1/subscriptions/?status=all", { token: t.partnerKey }));
    return list.objects[0];
  }, "the subscription");
  const asBought = await expectOk(call("GET", `/v1/subscriptions/${sub.id}/`, { token: t.partnerKey }));
  const deployedAt = Date.parse(asBought.start_time) + lateMs;
  vi.useFakeTimers({ toFake: ["Date"] });
  try {
    vi.setSystemTime(deployedAt);
    await expectOk(
      call("PATCH", `/api/subscription/${sub.id}`, {
        token: vendorToken,
        body: { deploymentStatus: "DEPLOYED" },
      }),
    );
  } finally {
    vi.useRealTimers();
  }
  expect((await call("GET", r.headers.get("location") as string, { token: t.partnerKey })).status).toBe(201);
  const deployed = await expectOk(call("GET", `/v1/subscriptions/${sub.id}/`, { token: t.partnerKey }));
  expect(deployed.start_time).toBe(new Date(deployedAt).toISOString());
  return { asBought, deployed };
}

describe("a syndicated end_time purchase deployed late", () => {
  it("minutes late keeps its end and costs those minutes less (was: a day longer, and charged for it)", async () => {
    const t = await tenantWithCatalog(1, 100);
    const noon = new Date();
    noon.setUTCHours(12, 0, 0, 0);
    const endTime = new Date(noon.getTime() + 3 * DAY).toISOString();
    const { asBought, deployed } = await deployedLate(t, endTime, 5 * 60_000);
    expect(asBought.end_time).toBe(endTime);
    expect(deployed.end_time).toBe(endTime);
    expect(Number(deployed.price)).toBeLessThan(Number(asBought.price));
  });

  it("ending at the latest end a term can have still ends by then, and reads back", async () => {
    const t = await tenantWithCatalog(1, 100);
    const { deployed } = await deployedLate(t, "9999-12-31T12:00:00.000Z", 20 * 3_600_000);
    expect(deployed.end_time).toBe("9999-12-31T12:00:00.000Z");
  });
});
