import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { RenewalMessage } from "../../src/app/renewals";
import worker from "../../src/index";
import { call, expectOk, type Tenant, tenantWithCatalog } from "../helpers";

/**
 * Turning auto_renew on for a term whose chain was cancelled after it (its last term cancelled):
 * the cron expires that term at its end without renewing it ("its chain was cancelled"), so a
 * 200 with `auto_renew: true` would tell the partner it renews. Refused with 409, as a term that
 * has ended with nothing after it is.
 */

const noon = (y: number, month: number, day: number) => new Date(Date.UTC(y, month - 1, day, 12));
let year = new Date().getUTCFullYear() + 30;

async function buyOne(t: Tenant) {
  const r = await call("POST", "/v1/subscriptions/", {
    token: t.partnerKey,
    body: {
      objects: [
        {
          customer: t.customers[0],
          resource: "mem",
          amount: 1,
          start_time: noon(year++, 2, 1).toISOString(),
          period: "1 month",
        },
      ],
    },
  });
  expect(r.status, r.text).toBe(201);
  return r.body.objects[0];
}
const extend = (t: Tenant, id: string) =>
  expectOk(call("POST", `/v1/subscriptions/${id}/action/?do=extend`, { token: t.partnerKey }));
const cancel = (t: Tenant, id: string) =>
  expectOk(call("DELETE", `/v1/subscriptions/${id}/`, { token: t.partnerKey }));
const read = (t: Tenant, id: string) =>
  expectOk(call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey }));

async function deliver(message: RenewalMessage) {
  const batch = createMessageBatch<RenewalMessage>("stratus-renewals", [
    { id: `renew-${message.subscription}`, timestamp: new Date(), attempts: 1, body: message },
  ]);
  await worker.queue(batch, env);
  return getQueueResult(batch, createExecutionContext());
}

describe("auto_renew on a chain cancelled after the term", () => {
  it("refuses turning it on (toggle, set, PATCH, queued) with 409; turning it off still answers 200", async () => {
    const t = await tenantWithCatalog(1);
    const first = await buyOne(t);
    const second = await extend(t, first.id);
    await cancel(t, second.id);
    const writes = [
      ["POST", `/v1/subscriptions/${first.id}/action/?do=auto_renew`, undefined, {}],
      ["POST", `/v1/subscriptions/${first.id}/action/?do=auto_renew`, { auto_renew: true }, {}],
      ["PATCH", `/v1/subscriptions/${first.id}/`, { auto_renew: true }, {}],
    ] as const;
    for (const [method, path, body, headers] of writes) {
      const r = await call(method, path, { token: t.partnerKey, body, headers });
      expect(r.status, `${method} ${path}: ${r.text}`).toBe(409);
      expect(r.body).toMatchObject({ type: "https://stratus.dev/problems/conflict" });
    }
    // Queued: accepted, then the operation fails with the same 409.
    const queued = await call("PATCH", `/v1/subscriptions/${first.id}/`, {
      token: t.partnerKey,
      body: { auto_renew: true },
      headers: { prefer: "respond-async" },
    });
    expect(queued.status).toBe(202);
    let polled = await call("GET", queued.headers.get("location") as string, { token: t.partnerKey });
    for (let i = 0; i < 100 && polled.status === 202; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      polled = await call("GET", queued.headers.get("location") as string, { token: t.partnerKey });
    }
    expect(polled.status, polled.text).toBe(409);
    expect(await read(t, first.id)).toMatchObject({ auto_renew: false });
    const off = await call("POST", `/v1/subscriptions/${first.id}/action/?do=auto_renew`, {
      token: t.partnerKey,
      body: { auto_renew: false },
    });
    expect(off.status, off.text).toBe(200);
    // What the refusal protects: at its end the term expires, not renewed.
    await deliver({ subscription: first.id, at: new Date(Date.parse(first.end_time) + 1000).toISOString() });
    expect(await read(t, first.id)).toMatchObject({ end_reason: "expired", auto_renew: false });
  });

  it("refuses a toggle on a term already on whose chain's last term, off, was cancelled", async () => {
    // The term's own flag is on, the chain's (its last term's, as grouped lists show it) off: the
    // toggle turns the chain's flag on. Before, it answered 200 auto_renew true, as a set of a
    // flag already on does, though nothing renews.
    const t = await tenantWithCatalog(1);
    const first = await buyOne(t);
    await expectOk(
      call("PATCH", `/v1/subscriptions/${first.id}/`, { token: t.partnerKey, body: { auto_renew: true } }),
    );
    const second = await extend(t, first.id);
    await expectOk(
      call("PATCH", `/v1/subscriptions/${second.id}/`, { token: t.partnerKey, body: { auto_renew: false } }),
    );
    await cancel(t, second.id);
    const r = await call("POST", `/v1/subscriptions/${first.id}/action/?do=auto_renew`, {
      token: t.partnerKey,
    });
    expect(r.status, r.text).toBe(409);
    expect(r.body).toMatchObject({ type: "https://stratus.dev/problems/conflict" });
    const grouped = await expectOk(call("GET", "/v1/groupedsubscriptions/", { token: t.partnerKey }));
    expect(grouped.objects.find((o: { id: string }) => o.id === first.id)).toMatchObject({
      auto_renew: false,
    });
  });

  it("refuses it through a live middle term when the chain's last term was cancelled", async () => {
    const t = await tenantWithCatalog(1);
    const first = await buyOne(t);
    const second = await extend(t, first.id);
    const third = await extend(t, second.id);
    await cancel(t, third.id);
    const r = await call("POST", `/v1/subscriptions/${first.id}/action/?do=auto_renew`, {
      token: t.partnerKey,
      body: { auto_renew: true },
    });
    expect(r.status, r.text).toBe(409);
    expect(await read(t, first.id)).toMatchObject({ auto_renew: false });
    expect(await read(t, second.id)).toMatchObject({ auto_renew: false });
  });

  it("still turns it on when only an earlier term was cancelled: the chain goes on", async () => {
    const t = await tenantWithCatalog(1);
    const first = await buyOne(t);
    const second = await extend(t, first.id);
    await cancel(t, first.id);
    const r = await call("POST", `/v1/subscriptions/${first.id}/action/?do=auto_renew`, {
      token: t.partnerKey,
      body: { auto_renew: true },
    });
    expect(r.status, r.text).toBe(200);
    expect(await read(t, second.id)).toMatchObject({ auto_renew: true });
  });
});
