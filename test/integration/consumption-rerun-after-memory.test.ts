import { createScheduledController, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { OperationPayload } from "../../src/app/intents";
import { newOpRef, runOperation } from "../../src/app/operations";
import { createOperation, findOperation } from "../../src/db/operations";
import { REPORT_DRAWS_FOR_MS, REPORT_MEMORY_MS } from "../../src/domain/consumption";
import { armFault, disarmFaults } from "../../src/domain/faults";
import { EVERYTHING } from "../../src/domain/scope";
import worker from "../../src/index";
import { subscriptionShard } from "../../src/objects/subscription-object";
import { call, expectOk, type Tenant, tenantWithCatalog, unique } from "../helpers";

/**
 * What a consumption report took, and the queue it walked, are remembered 48 hours (README, the
 * consumption report). An operation's run is counted only once the consumer starts it, so a
 * report whose first run died half-way stays `running`, neither run again nor given up, for as
 * long as the operations consumer does not run it (a paused or broken consumer, a Queues outage;
 * the stalled sweep only sends it again); a keyed report whose resumed retries keep dying keeps
 * its key (each takeover extends it 24 hours). Run again more than 48 hours later, it found
 * neither memory (the cron forgot its queue; the depletable's shard forgot its draw at its next
 * report, and the record keeps only its last 32) and drained what its first run took a second
 * time. A run more than 24 hours after the report's first run now draws nothing: the report is
 * given up, its 409 saying part of it may have been drained.
 */

const HOUR = 3_600_000;

const read = (t: Tenant, id: string) =>
  expectOk(call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey }));

const shifted = (iso: string, ms: number) => new Date(Date.parse(iso) - ms).toISOString();

/** `ms` pass for report `report` on depletable `only`: what its shard and D1 remember of it ages. */
async function ageReport(report: string, only: string, ms: number) {
  await runInDurableObject(subscriptionShard(env, only), async (_i, state) => {
    state.storage.sql.exec("UPDATE report_draws SET at = at - ? WHERE report = ?", ms, report);
  });
  const row = await env.DB.prepare("SELECT expires_at FROM consumption_queues WHERE report = ?")
    .bind(report)
    .first<{ expires_at: string }>();
  if (!row) throw new Error(`no queue stored for ${report}`);
  await env.DB.prepare("UPDATE consumption_queues SET expires_at = ? WHERE report = ?")
    .bind(shifted(row.expires_at, ms), report)
    .run();
}

/** `ms` pass for operation `opRef`: it was accepted (and last moved) `ms` earlier. */
async function ageOperation(opRef: string, ms: number) {
  const op = await findOperation(env, opRef, EVERYTHING);
  if (!op) throw new Error(`no operation ${opRef}`);
  const payload = { ...op.payload, at: shifted(op.payload.at as string, ms) };
  await env.DB.prepare("UPDATE operations SET payload = ?, created_at = ?, updated_at = ? WHERE op_ref = ?")
    .bind(JSON.stringify(payload), shifted(op.createdAt, ms), shifted(op.updatedAt, ms), opRef)
    .run();
}

/** The customer's traffic is reported every so often, answered at once: `n` reports of 1. */
async function otherReports(t: Tenant, customer: string, n: number) {
  for (let i = 0; i < n; i++) {
    const r = await call("POST", `/v1/customers/${customer}/consumption`, {
      token: t.partnerKey,
      body: { resource: "tx", amount: 1 },
    });
    expect(r.status, r.text).toBe(200);
  }
}

const cron = () =>
  worker.scheduled(createScheduledController({ scheduledTime: Date.now(), cron: "*/5 * * * *" }), env);

/** A tenant with one depletable tx of 1000, and a report of 4 as an operation whose first run drew and died. */
async function reportWhoseFirstRunDied() {
  const t = await tenantWithCatalog(1, 1000);
  const customer = t.customers[0] as string;
  const bought = await expectOk(
    call("POST", "/v1/subscriptions/", {
      token: t.partnerKey,
      body: { objects: [{ customer, resource: "tx", amount: 1000 }] },
    }),
    201,
  );
  const only = bought.objects[0].id as string;
  const opRef = newOpRef();
  const report = `report-${opRef}`;
  const payload: OperationPayload = {
    kind: "consume",
    partnerId: t.partnerId,
    at: new Date().toISOString(),
    customer,
    product: "tx",
    amount: 4,
    report,
  };
  await createOperation(env, {
    opRef,
    partnerId: t.partnerId,
    customerId: customer,
    kind: "consume",
    payload: payload as unknown as Record<string, unknown>,
    now: new Date(),
  });
  // Its first run takes 4 and dies before it stores its result: the operation stays running.
  armFault("operation.performed");
  await expect(runOperation(env, opRef)).rejects.toThrow("operation.performed");
  disarmFaults();
  expect(await read(t, only)).toMatchObject({ remaining: 996 });
  return { t, customer, only, opRef, report };
}

async function expectGivenUp(opRef: string) {
  const op = await findOperation(env, opRef, EVERYTHING);
  expect(op?.status).toBe("failed");
  const error = JSON.parse(op?.resultBody ?? "{}");
  expect(error).toMatchObject({ kind: "conflict" });
  expect(JSON.stringify(error)).toContain("part of the report may have been drained");
}

describe("a consumption operation run again more than 48 hours after its first run died half-way", () => {
  it("drains nothing more than its first run took", async () => {
    const { t, customer, only, opRef, report } = await reportWhoseFirstRunDied();

    // 49 hours pass with the operations consumer not running it (the memories age by as much).
    await ageReport(report, only, REPORT_MEMORY_MS + HOUR);
    await ageOperation(opRef, REPORT_MEMORY_MS + HOUR);
    // Meanwhile the customer's traffic is reported every so often, answered at once.
    await otherReports(t, customer, 32);
    await cron();
    expect(await read(t, only)).toMatchObject({ remaining: 964 });

    // The consumer runs again: the operation runs once more.
    await runOperation(env, opRef);
    await expectGivenUp(opRef);
    expect((await read(t, only)).remaining, "the report's 4 drained once").toBe(964);
  });
});

describe("a consumption operation run again past its window, its queue still remembered", () => {
  it("draws nothing and is given up", async () => {
    const { t, only, opRef, report } = await reportWhoseFirstRunDied();
    await ageReport(report, only, REPORT_DRAWS_FOR_MS + HOUR);
    await ageOperation(opRef, REPORT_DRAWS_FOR_MS + HOUR);
    await cron();
    await runOperation(env, opRef);
    await expectGivenUp(opRef);
    expect((await read(t, only)).remaining).toBe(996);
  });

  it("within it, finishes as its first run drew", async () => {
    const { t, only, opRef, report } = await reportWhoseFirstRunDied();
    await ageReport(report, only, REPORT_DRAWS_FOR_MS - HOUR);
    await ageOperation(opRef, REPORT_DRAWS_FOR_MS - HOUR);
    await cron();
    await runOperation(env, opRef);
    const op = await findOperation(env, opRef, EVERYTHING);
    expect(op?.status).toBe("succeeded");
    expect(JSON.parse(op?.resultBody ?? "{}")).toMatchObject({ unallocated: 0 });
    expect((await read(t, only)).remaining).toBe(996);
  });
});

describe("a keyed consumption report whose resumed retries kept dying, retried more than 48 hours later", () => {
  it("answers 409 and drains nothing more than its first run took", async () => {
    const t = await tenantWithCatalog(1, 1000);
    const customer = t.customers[0] as string;
    const bought = await expectOk(
      call("POST", "/v1/subscriptions/", {
        token: t.partnerKey,
        body: { objects: [{ customer, resource: "tx", amount: 1000 }] },
      }),
      201,
    );
    const only = bought.objects[0].id as string;
    const key = unique("key");
    const report = (headers: Record<string, string> = {}) =>
      call("POST", `/v1/customers/${customer}/consumption`, {
        token: t.partnerKey,
        headers,
        body: { resource: "tx", amount: 4 },
      });
    // Its first run takes 4 and its answer is lost: the key keeps its intent, not an answer.
    armFault("request.answered");
    expect((await report({ "idempotency-key": key })).status).toBe(500);
    disarmFaults();
    expect(await read(t, only)).toMatchObject({ remaining: 996 });

    // 49 hours pass, every resumed retry dying (each takeover kept the key 24 hours more).
    const row = await env.DB.prepare("SELECT intent FROM idempotency_keys WHERE key = ?")
      .bind(key)
      .first<{ intent: string }>();
    const intent = JSON.parse(row?.intent ?? "null") as { payload: { at: string; report: string } };
    const aged = REPORT_MEMORY_MS + HOUR;
    await ageReport(intent.payload.report, only, aged);
    intent.payload.at = shifted(intent.payload.at, aged);
    await env.DB.prepare("UPDATE idempotency_keys SET intent = ? WHERE key = ?")
      .bind(JSON.stringify(intent), key)
      .run();
    await otherReports(t, customer, 32);
    await cron();
    expect(await read(t, only)).toMatchObject({ remaining: 964 });

    const retry = await report({ "idempotency-key": key });
    expect(retry.status, retry.text).toBe(409);
    expect(retry.text).toContain("part of the report may have been drained");
    expect((await read(t, only)).remaining, "the report's 4 drained once").toBe(964);
    // The key keeps that answer.
    expect((await report({ "idempotency-key": key })).status).toBe(409);
  });
});
