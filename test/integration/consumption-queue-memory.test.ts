import { createScheduledController } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { OperationPayload } from "../../src/app/intents";
import { newOpRef, runOperation } from "../../src/app/operations";
import { buy } from "../../src/app/subscriptions";
import { createOperation, findOperation } from "../../src/db/operations";
import { REPORT_MEMORY_MS } from "../../src/domain/consumption";
import { armFault, disarmFaults } from "../../src/domain/faults";
import { EVERYTHING } from "../../src/domain/scope";
import worker from "../../src/index";
import { expectBooksBalance, purchaseDiedAt } from "../books";
import { call, eventually, expectOk, type Tenant, tenantWithCatalog } from "../helpers";

/**
 * The queue a consumption report walks is remembered for 48 hours (README, "the consumption
 * report"), so every run of the report walks the one its first run read. It was remembered 48
 * hours from the report's *acceptance*, not from when its first run stored it: a report whose
 * operation waited in the operations queue longer than that (a consumer outage, a backlog) stored
 * a queue already past its memory, which the next cron run forgot. The report's next run (its
 * operation delivered again, the stalled-operation sweep's requeue, its give-up's last run) then
 * read a queue of its own, finding an older depletable that reached D1 since, and drained it on
 * top of what its first run took from the next one: the report drained twice.
 */

const read = (t: Tenant, id: string) =>
  expectOk(call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey }));

describe("a consumption report whose operation first ran more than 48 hours after it was accepted", () => {
  it("walks the same queue when it runs again after a cron run: drained once", async () => {
    const t = await tenantWithCatalog(1, 100);
    const customer = t.customers[0] as string;
    // A purchase of tx whose request died after its commission: not in D1 yet, its id the older.
    const died = await purchaseDiedAt(t, "purchase.issued", ["tx"]);
    disarmFaults();
    const older = died.ids.subscriptions[0] as string;
    const bought = await expectOk(
      call("POST", "/v1/subscriptions/", {
        token: t.partnerKey,
        body: { objects: [{ customer, resource: "tx", amount: 10 }] },
      }),
      201,
    );
    const newer = bought.objects[0].id as string;

    // The report was accepted 49 hours ago; its operation waited in the queue since.
    const at = new Date(Date.now() - REPORT_MEMORY_MS - 3_600_000);
    const opRef = newOpRef();
    const payload: OperationPayload = {
      kind: "consume",
      partnerId: t.partnerId,
      at: at.toISOString(),
      customer,
      product: "tx",
      amount: 1,
      report: `report-${opRef}`,
    };
    await createOperation(env, {
      opRef,
      partnerId: t.partnerId,
      customerId: customer,
      kind: "consume",
      payload: payload as unknown as Record<string, unknown>,
      now: at,
    });

    // Its first run walks the newer only (the older is not in D1) and takes 1 there; it dies
    // before it stores its result, so the operation is still running.
    armFault("operation.performed");
    await expect(runOperation(env, opRef)).rejects.toThrow("operation.performed");
    disarmFaults();
    expect(await read(t, newer)).toMatchObject({ remaining: 9 });

    // The cron runs five minutes later.
    await worker.scheduled(
      createScheduledController({ scheduledTime: Date.now() + 300_000, cron: "*/5 * * * *" }),
      env,
    );

    // The older purchase's retry finishes it: it took effect and is in D1.
    await buy(env, t.partnerId, died.planned, died.ids, new Date());
    await eventually(async () => {
      const row = await env.DB.prepare("SELECT 1 AS ok FROM subscriptions WHERE id = ?").bind(older).first();
      return row ?? undefined;
    }, "the older in D1");

    // The operation runs again: it walks the queue its first run read, the newer only.
    await runOperation(env, opRef);
    const op = await findOperation(env, opRef, EVERYTHING);
    expect(op?.status).toBe("succeeded");
    expect(JSON.parse(op?.resultBody ?? "{}")).toMatchObject({ unallocated: 0 });
    expect((await read(t, newer)).remaining, "what the first run took, once").toBe(9);
    expect((await read(t, older)).remaining, "not in the first run's queue: untouched").toBe(2);
    await expectBooksBalance(t);
  });
});
