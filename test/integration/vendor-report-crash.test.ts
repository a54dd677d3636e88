import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { abandonOverduePurchases, VENDOR_DEADLINE_MS } from "../../src/app/operations";
import { armFault, disarmFaults } from "../../src/domain/faults";
import { recoveryBoundMs } from "../../src/domain/recovery";
import { ledgerOf } from "../../src/objects/quota-ledger";
import { deliver, expectBooksBalance, recoverAll } from "../books";
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

vendorEndpoints();
afterEach(() => disarmFaults());

/** A syndicated purchase waiting on its vendor: its operation, the vendor's report, and the ledger's sweep. */
async function waitingPurchase() {
  const t = await tenantWithCatalog(1, 100);
  const { product, vendorId } = await syndicatedProduct(t);
  const customer = t.customers[0] as string;
  const r = await call("POST", "/v1/subscriptions/", {
    token: t.partnerKey,
    body: { objects: [{ customer, resource: product, amount: 3, period: "1 week" }] },
  });
  const location = r.headers.get("location") as string;
  const opRef = location.split("/").at(-1) as string;
  const syn = await eventually(async () => {
    const list = await expectOk(call("GET", "/v1/subscriptions/?status=all", { token: t.partnerKey }));
    return list.objects[0];
  }, "the subscription");
  await eventually(async () => {
    const op = await env.DB.prepare("SELECT waiting FROM operations WHERE op_ref = ?")
      .bind(opRef)
      .first<{ waiting: number }>();
    return op?.waiting ? true : undefined;
  }, "waiting");
  const vendorToken = await vendorTokenOf(t, vendorId);
  const report = (deploymentStatus: string) =>
    call("PATCH", `/api/subscription/${syn.id}`, { token: vendorToken, body: { deploymentStatus } });
  /** The ledger's sweep, past its bound; the operation it queues again runs from the queue. */
  const sweep = async () => {
    const asked = await ledgerOf(env, customer).sweep(Date.now() + recoveryBoundMs(env) + 1_000);
    // None if the run the report's push queued finished it first.
    expect(asked.length).toBeLessThanOrEqual(1);
    await deliver(asked.map((recover) => ({ recover })));
    await eventually(async () => {
      const op = await env.DB.prepare("SELECT status FROM operations WHERE op_ref = ?")
        .bind(opRef)
        .first<{ status: string }>();
      return op?.status === "running" ? undefined : op;
    }, "the operation to finish");
  };
  return { t, product, location, report, sweep, id: syn.id as string };
}

/**
 * A vendor's report whose request dies after the ledger decided the purchase (README,
 * "Recovery"): the sweep finishes what the decision owes, and runs the operation again, which
 * answers as the report would have: 424 after FAILED, 201 after DEPLOYED. It is not left running
 * until the vendor deadline.
 */
describe("a vendor's report whose request dies after the decision", () => {
  it("FAILED, dead in the undo: the operation answers 424 once the sweep finished it", async () => {
    const { t, product, location, report, sweep } = await waitingPurchase();
    armFault("purchase.rejected");
    // The report took effect: the run it began died, and is not the vendor's to retry.
    expect((await report("FAILED")).status).toBe(200);
    disarmFaults();
    await sweep();
    const final = await call("GET", location, { token: t.partnerKey });
    expect(final.status, final.text).toBe(424);
    expect(await usageOf(t, 0, product)).toMatchObject({ usage: 0, pending: 0 });
    // The vendor's retry of its report changes nothing.
    expect((await report("FAILED")).status).toBe(200);
    expect((await call("GET", location, { token: t.partnerKey })).status).toBe(424);
    await expectBooksBalance(t);
  });

  it("DEPLOYED, dead after the accept: the operation answers 201 once the sweep finished it", async () => {
    const { t, product, location, report, sweep, id } = await waitingPurchase();
    armFault("purchase.settled");
    expect((await report("DEPLOYED")).status).toBe(200);
    disarmFaults();
    await sweep();
    const final = await call("GET", location, { token: t.partnerKey });
    expect(final.status, final.text).toBe(201);
    expect(final.body.objects.map((o: { id: string }) => o.id)).toEqual([id]);
    expect(await usageOf(t, 0, product)).toMatchObject({ usage: 3, pending: 0 });
    await expectBooksBalance(t);
  });
});

/**
 * A vendor's report whose request dies in the run of the operation it began, before anything was
 * decided: that run is no longer waiting on the vendor, so the stalled-operation sweep runs it
 * again; one that dies just after its commit has the operation woken by that commit's push.
 * Before, the operation stayed `waiting` (so never stalled), its order and quota pending, until
 * the 7-day vendor deadline.
 */
describe("a vendor's report whose request dies before the decision", () => {
  for (const [status, step, answer, usage] of [
    ["FAILED", "purchase.accepted", 424, 0],
    ["DEPLOYED", "purchase.created", 201, 3],
    // Dead just after the report's commit, before it ran the operation at all: the push of that
    // commit (the shard's alarm retries it) wakes the operation.
    ["FAILED", "subscription.committed", 424, 0],
    ["DEPLOYED", "subscription.committed", 201, 3],
  ] as const) {
    it(`${status}, dead at ${step}: recovery runs the operation again, which answers ${answer}`, async () => {
      const { t, product, location, report } = await waitingPurchase();
      armFault(step);
      // Dead in the report's own commit, the report answers 500; dead in the run it began, 200.
      expect((await report(status)).status).toBe(step === "subscription.committed" ? 500 : 200);
      disarmFaults();
      await recoverAll(t);
      const final = await eventually(async () => {
        const reply = await call("GET", location, { token: t.partnerKey });
        return reply.status === 202 ? undefined : reply;
      }, "the operation to finish");
      expect(final.status, final.text).toBe(answer);
      expect(await usageOf(t, 0, product)).toMatchObject({ usage, pending: 0 });
      await expectBooksBalance(t);
    });
  }
});

/**
 * A syndicated purchase whose vendor reports DEPLOYED just before the 7-day deadline, the run that
 * report began dying before the decision (so the operation is `running`, no longer `waiting`, left
 * to the stalled-operation sweep). The cron's next run, a minute later, is past the deadline: its
 * overdue-purchase step must not undo a purchase whose vendor did report in time (a review of
 * 2026-12-03 found it undone, 424).
 */
describe("a vendor that reported DEPLOYED before the deadline", () => {
  it("is not undone by the deadline sweep as 'the vendor did not provision within 7 days'", async () => {
    const { t, product, location, report, id } = await waitingPurchase();
    // Accepted 7 days ago less two minutes: the vendor reports just in time.
    const accepted = new Date(Date.now() - VENDOR_DEADLINE_MS + 120_000).toISOString();
    await env.DB.prepare("UPDATE operations SET created_at = ? WHERE op_ref = ?")
      .bind(accepted, location.split("/").at(-1))
      .run();
    // The run the report began dies before the decision (as does any run until the cron below).
    armFault("operation.started", 50);
    expect((await report("DEPLOYED")).status).toBe(200);
    // The cron, three minutes later: past the deadline.
    await abandonOverduePurchases(env, new Date(Date.now() + 180_000));
    disarmFaults();
    await recoverAll(t);
    const final = await call("GET", location, { token: t.partnerKey });
    const sub = await expectOk(call("GET", `/v1/subscriptions/${id}`, { token: t.partnerKey }));
    expect({ status: final.status, detail: final.body?.detail, ended_at: sub.ended_at }).toEqual({
      status: 201,
      detail: undefined,
      ended_at: null,
    });
    expect(await usageOf(t, 0, product)).toMatchObject({ usage: 3, pending: 0 });
    await expectBooksBalance(t);
  });
});

/**
 * A vendor's DEPLOYED whose request died just after its commit (before its push and before it ran
 * the operation), and whose next report moves the deployment on (STOPPED or UNDEPLOYED, only
 * reachable from DEPLOYED): the purchase was reported on all the same, and completes. Before, only
 * a record reading DEPLOYED or FAILED had its operation run (by the report or by its push), so the
 * operation stayed waiting, never stalled, until the 7-day deadline undid the deployed purchase.
 */
describe("a vendor's DEPLOYED that died after its commit, followed by another report", () => {
  for (const next of ["STOPPED", "UNDEPLOYED"] as const) {
    it(`then ${next}: the purchase completes (201), not undone by the deadline`, async () => {
      const { t, product, location, report, id } = await waitingPurchase();
      armFault("subscription.committed");
      expect((await report("DEPLOYED")).status).toBe(500);
      disarmFaults();
      expect((await report(next)).status).toBe(200);
      await recoverAll(t);
      const final = await eventually(
        async () => {
          const reply = await call("GET", location, { token: t.partnerKey });
          return reply.status === 202 ? undefined : reply;
        },
        "the operation to finish",
        50,
      ).catch(async () => {
        // Left waiting: the deadline's cron, a week on, undoes what the vendor deployed.
        await abandonOverduePurchases(env, new Date(Date.now() + VENDOR_DEADLINE_MS + 60_000));
        return call("GET", location, { token: t.partnerKey });
      });
      expect(final.status, final.text).toBe(201);
      const sub = await expectOk(call("GET", `/v1/subscriptions/${id}`, { token: t.partnerKey }));
      expect({ ended_at: sub.ended_at, deployment_status: sub.deployment_status }).toEqual({
        ended_at: null,
        deployment_status: next,
      });
      expect(await usageOf(t, 0, product)).toMatchObject({ usage: 3, pending: 0 });
      await expectBooksBalance(t);
    });
  }
});

/**
 * A vendor's DEPLOYED answered 200 just before the deadline whose run could not begin (D1 refused
 * the operation's start: the report is answered as taken all the same), its push's wake of the
 * operation still in the queue when the cron runs past the deadline: the vendor reported in time,
 * so the purchase is not undone.
 */
describe("a vendor that reported DEPLOYED before the deadline, its run never begun", () => {
  it("is completed, not undone, by the deadline's cron", async () => {
    const { t, product, location, id } = await waitingPurchase();
    const opRef = location.split("/").at(-1) as string;
    const accepted = new Date(Date.now() - VENDOR_DEADLINE_MS + 120_000).toISOString();
    await env.DB.prepare("UPDATE operations SET created_at = ? WHERE op_ref = ?").bind(accepted, opRef).run();
    const sub = await expectOk(call("GET", `/v1/subscriptions/${id}`, { token: t.partnerKey }));
    const vendor = await env.DB.prepare("SELECT vendor_id FROM products WHERE id = ?")
      .bind(product)
      .first<{ vendor_id: string }>();
    const vendorToken = await vendorTokenOf(t, vendor?.vendor_id as string);
    // The wake the report's push sends waits in the queue (here: it is not delivered).
    const held = vi.spyOn(env.OPERATIONS, "send").mockImplementation(async () => undefined as never);
    try {
      const startRefused = (db: D1Database): D1Database => {
        const wrap = <T extends D1Database | D1DatabaseSession>(target: T): T =>
          new Proxy(target, {
            get(tt, key) {
              if (key === "prepare")
                return (sql: string) => {
                  if (/^\s*update\s+"operations"/i.test(sql)) throw new Error("D1 is down");
                  return tt.prepare(sql);
                };
              if (key === "withSession")
                return (start?: string) => wrap((tt as D1Database).withSession(start));
              const value = Reflect.get(tt, key);
              return typeof value === "function" ? value.bind(tt) : value;
            },
          });
        return wrap(db);
      };
      const reported = await call("PATCH", `/api/subscription/${sub.id}`, {
        token: vendorToken,
        body: { deploymentStatus: "DEPLOYED" },
        env: Object.create(env, { DB: { value: startRefused(env.DB) } }) as Env,
      });
      expect(reported.status, reported.text).toBe(200);
      // The cron, three minutes later: past the deadline.
      await abandonOverduePurchases(env, new Date(Date.now() + 180_000));
    } finally {
      held.mockRestore();
    }
    await recoverAll(t);
    const final = await call("GET", location, { token: t.partnerKey });
    expect(final.status, final.text).toBe(201);
    expect(await usageOf(t, 0, product)).toMatchObject({ usage: 3, pending: 0 });
    await expectBooksBalance(t);
  });
});
