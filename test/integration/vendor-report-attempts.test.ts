import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { armFault, disarmFaults } from "../../src/domain/faults";
import { expectBooksBalance, recoverAll } from "../books";
import {
  call,
  eventually,
  expectOk,
  syndicatedProduct,
  tenantWithCatalog,
  usageOf,
  vendorEndpoints,
  vendorTokenOf,
} from "../helpers";

/**
 * An operation's 8 attempts count the runs that failed since it last made progress (README,
 * "Operations"): the runs a vendor's reports begin on a purchase waiting on it, each ending waiting
 * again, never use them up, so the last report's run, should it die, is recovered to 201 rather
 * than given up and undone. Found by review.
 */

vendorEndpoints();
afterEach(() => disarmFaults());

const opRow = (opRef: string) =>
  env.DB.prepare("SELECT status, waiting, attempts FROM operations WHERE op_ref = ?")
    .bind(opRef)
    .first<{ status: string; waiting: number; attempts: number }>();

/** A purchase of two lines of one syndicated product, waiting on its vendor. */
async function twoLinePurchase() {
  const t = await tenantWithCatalog(1, 100);
  const { product, vendorId } = await syndicatedProduct(t);
  const customer = t.customers[0] as string;
  const r = await call("POST", "/v1/subscriptions/", {
    token: t.partnerKey,
    body: {
      objects: [
        { customer, resource: product, amount: 1, period: "1 week" },
        { customer, resource: product, amount: 2, period: "1 week" },
      ],
    },
  });
  expect(r.status, r.text).toBe(202);
  const location = r.headers.get("location") as string;
  const opRef = location.split("/").at(-1) as string;
  const subs = await eventually(async () => {
    const list = await expectOk(call("GET", "/v1/subscriptions/?status=all", { token: t.partnerKey }));
    return list.objects.length === 2 ? (list.objects as Array<{ id: string; amount: number }>) : undefined;
  }, "both subscriptions");
  const waiting = () => eventually(async () => ((await opRow(opRef))?.waiting ? true : undefined), "waiting");
  await waiting();
  const vendorToken = await vendorTokenOf(t, vendorId);
  const report = (id: string, body: Record<string, unknown>) =>
    call("PATCH", `/api/subscription/${id}`, { token: vendorToken, body });
  const [a, b] = subs.sort((x, y) => x.amount - y.amount).map((s) => s.id) as [string, string];
  return { t, product, location, opRef, a, b, report, waiting };
}

/**
 * Every vendor report on a line of a purchase still waiting on another line runs the operation
 * (`runReported`, and the push's wake), and each run counts as an attempt (`startOperation`).
 * A vendor that reports DEPLOYED again on its first line (allowed: "starts nothing twice") or
 * updates its endpoints uses up the operation's 8 attempts without anything failing. Then the
 * one run that dies (the README's "a run that a vendor's report began ... is queued again, and
 * answers 201") is given up by the stalled-operation sweep instead: the purchase that every vendor
 * deployed is undone, answered 409 "could not be completed in 8 attempts".
 */
describe("a vendor's reports on a waiting purchase do not use up its operation's attempts", () => {
  it("DEPLOYED on both lines (the first reported a few times), the last report's run dead: recovery completes it (201), not given up", async () => {
    const { t, product, location, opRef, a, b, report, waiting } = await twoLinePurchase();
    expect((await report(a, { deploymentStatus: "DEPLOYED" })).status).toBe(200);
    // The vendor asserts its state, and gives the customer its endpoint: nothing fails.
    for (let i = 0; i < 7; i++) {
      const again = await report(a, {
        deploymentStatus: "DEPLOYED",
        syndicatedEndpoints: [`https://crm.example.com/${i}`],
      });
      expect(again.status, again.text).toBe(200);
    }
    await waiting();
    expect(await usageOf(t, 0, product)).toMatchObject({ usage: 3, pending: 3 });
    const before = await opRow(opRef);
    // The last line's DEPLOYED: the run it begins dies before the decision.
    armFault("purchase.created");
    expect((await report(b, { deploymentStatus: "DEPLOYED" })).status).toBe(200);
    disarmFaults();
    await recoverAll(t);
    const final = await eventually(async () => {
      const reply = await call("GET", location, { token: t.partnerKey });
      return reply.status === 202 ? undefined : reply;
    }, "the operation to finish");
    expect(final.status, `attempts before the last report: ${before?.attempts}; answer: ${final.text}`).toBe(
      201,
    );
    expect(await usageOf(t, 0, product)).toMatchObject({ usage: 3, pending: 0 });
    await expectBooksBalance(t);
  });
});
