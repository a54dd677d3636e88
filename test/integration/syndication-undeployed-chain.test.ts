import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { renewOrExpire } from "../../src/app/renewals";
import { expectBooksBalance } from "../books";
import {
  call,
  deployedTerm,
  eventually,
  expectOk,
  syndicatedProduct,
  tenantWithCatalog,
  usageOf,
  vendorEndpoints,
  vendorTokenOf,
} from "../helpers";

vendorEndpoints();

/** A syndicated subscription its vendor deployed, auto-renewing or not. */
async function deployed(autoRenew: boolean) {
  const { t, product, id, report: patch } = await deployedTerm("1 week", autoRenew);
  const report = (deploymentStatus: string) => expectOk(patch(id, deploymentStatus));
  const charges = async () =>
    (await expectOk(call("GET", "/v1/charges", { token: t.partnerKey }))).objects as Array<{ kind: string }>;
  return { t, product, id, report, charges };
}

describe("a syndicated chain its vendor has UNDEPLOYED", () => {
  it("is not extended: nothing is bought for a term nobody deploys (was: charged at once, UNDEPLOYED)", async () => {
    const { t, product, id, report, charges } = await deployed(false);
    await report("UNDEPLOYED");
    const ext = await call("POST", `/v1/subscriptions/${id}/action/?do=extend`, { token: t.partnerKey });
    expect(ext.status, ext.text).toBe(409);
    expect((await charges()).map((c) => c.kind)).toEqual(["purchase"]);
    expect(await usageOf(t, 0, product)).toMatchObject({ usage: 1, pending: 0 });
    // Deployed again, the chain is extended as before.
    await report("DEPLOYED");
    const again = await call("POST", `/v1/subscriptions/${id}/action/?do=extend`, { token: t.partnerKey });
    expect(again.status, again.text).toBe(200);
    expect(again.body.deployment_status).toBe("DEPLOYED");
    await expectBooksBalance(t);
  });

  it("is not renewed by the cron: it expires at its end, saying why, charged nothing more", async () => {
    const { t, product, id, report, charges } = await deployed(true);
    await report("UNDEPLOYED");
    const sub = await expectOk(call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey }));
    const at = new Date(Date.parse(sub.end_time) + 60_000);
    expect(await renewOrExpire(env, id, at)).toBe("failed");
    const after = await expectOk(call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey }));
    expect(after).toMatchObject({ end_reason: "expired", descendants: [] });
    expect(after.renewal_error).toMatch(/UNDEPLOYED|undeployed/);
    expect((await charges()).map((c) => c.kind)).toEqual(["purchase"]);
    expect(await usageOf(t, 0, product)).toMatchObject({ usage: 0, pending: 0 });
    await expectBooksBalance(t);
  });
});

/** A syndicated cloud of `amount`, its vendor's DEPLOYED reported and its purchase completed. */
async function deployedCloud(amount: number) {
  const t = await tenantWithCatalog(1, 100);
  const { product, vendorId } = await syndicatedProduct(t, undefined, { kind: "caas", unit: "cloud" });
  const customer = t.customers[0] as string;
  const bought = await call("POST", "/v1/subscriptions/", {
    token: t.partnerKey,
    body: { objects: [{ customer, resource: product, amount }] },
  });
  expect(bought.status, bought.text).toBe(202);
  const id = (
    await eventually(async () => {
      const list = await expectOk(call("GET", "/v1/subscriptions/?status=all", { token: t.partnerKey }));
      return list.objects[0];
    }, "the cloud")
  ).id as string;
  const vendorToken = await vendorTokenOf(t, vendorId);
  const report = (deploymentStatus: string) =>
    expectOk(call("PATCH", `/api/subscription/${id}`, { token: vendorToken, body: { deploymentStatus } }));
  const run = (action: "start" | "stop") =>
    call("POST", `/v1/subscriptions/${id}/action/?do=${action}`, { token: t.partnerKey });
  await report("DEPLOYED");
  await eventually(async () => {
    const op = await call("GET", bought.headers.get("location") as string, { token: t.partnerKey });
    return op.status === 201 ? true : undefined;
  }, "the purchase to complete");
  return { t, id, report, run, vendorToken };
}

describe("a syndicated cloud its vendor has UNDEPLOYED", () => {
  it("does not start: no hour is billed for an application nobody deploys (was: 200, running and billed)", async () => {
    const { t, id, report, run } = await deployedCloud(1);
    expect((await run("stop")).status).toBe(200);

    await report("UNDEPLOYED");
    const refused = await run("start");
    expect(refused.status, refused.text).toBe(409);
    expect(refused.body.detail).toMatch(/undeployed by its vendor/);
    const stopped = await expectOk(call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey }));
    expect(stopped.run_state).toBe("stopped");

    // Deployed again, it starts as before.
    await report("DEPLOYED");
    const started = await run("start");
    expect(started.status, started.text).toBe(200);
    expect(started.body.run_state).toBe("running");
    await expectBooksBalance(t);
  });
});

describe("a syndicated cloud running when its vendor reports UNDEPLOYED", () => {
  it("stops there: no hour after the report is billed (was: ran on, billed every hour and month)", async () => {
    const { t, id, report, vendorToken } = await deployedCloud(2);
    const started = await call("POST", `/v1/subscriptions/${id}/action/?do=start`, { token: t.partnerKey });
    expect(started.body.run_state).toBe("running");
    // A second boundary crossed: its running time makes a line.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const sequence = (await expectOk(call("GET", `/api/subscription/${id}`, { token: vendorToken })))
      .sequence;

    const undeployed = await report("UNDEPLOYED");
    // One change, one event: the status and the stop it makes.
    expect(undeployed.sequence).toBe(sequence + 1);
    const read = await expectOk(call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey }));
    expect(read.run_state).toBe("stopped");
    const usage = await expectOk(call("GET", `/v1/subscriptions/${id}/usage`, { token: t.partnerKey }));
    expect(usage.accruing).toBe("0.00");
    expect(usage.intervals.every((i: { end: unknown }) => i.end !== null)).toBe(true);
    // Its running time up to the report is billed, once.
    const lines = await eventually(async () => {
      const charges = await expectOk(call("GET", `/v1/charges?subscription=${id}`, { token: t.partnerKey }));
      const usageLines = charges.objects.filter((c: { kind: string }) => c.kind === "usage");
      return usageLines.length > 0 ? usageLines : undefined;
    }, "the usage line");
    expect(lines).toHaveLength(1);
    // Deployed again, it stays stopped until its partner starts it.
    await report("DEPLOYED");
    const again = await expectOk(call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey }));
    expect(again.run_state).toBe("stopped");
    await expectBooksBalance(t);
  });
});
