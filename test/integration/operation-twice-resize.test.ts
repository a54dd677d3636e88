import { env } from "cloudflare:workers";
import { v7 } from "uuid";
import { describe, expect, it } from "vitest";
import { runOperation } from "../../src/app/operations";
import { createOperation } from "../../src/db/operations";
import { isRunning } from "../../src/domain/metering";
import { subscriptionObject } from "../../src/objects/subscription-object";
import { deliver, expectBooksBalance } from "../books";
import { call, shardsHeld, type Tenant, tenantWithCatalog, usageOf } from "../helpers";
import { buyFor } from "../legacy";

async function stored(t: Tenant, id: string, change: Record<string, unknown>) {
  const opRef = `op_${crypto.randomUUID().replaceAll("-", "")}`;
  const now = new Date();
  await createOperation(env, {
    opRef,
    partnerId: t.partnerId,
    customerId: null,
    kind: change.kind as string,
    payload: { ...change, partnerId: t.partnerId, at: now.toISOString(), subscription: id, ref: v7() },
    now,
  });
  return opRef;
}

/** A run held mid-way while a redelivery runs the same operation to its end. */
async function twice(t: Tenant, opRef: string, method: string) {
  const held = shardsHeld(method);
  const first = runOperation(held.env, opRef);
  await held.reached;
  await deliver([{ opRef }]);
  const between = await call("GET", `/v1/operations/${opRef}`, { token: t.partnerKey });
  held.release();
  await first;
  const done = await call("GET", `/v1/operations/${opRef}`, { token: t.partnerKey });
  expect(done.status, done.text).toBe(200);
  expect(between.body).toEqual(done.body);
  return done;
}

describe("an operation run twice at once", () => {
  it("a resize with If-Match is applied once, held once, with one answer", async () => {
    const t = await tenantWithCatalog(1, 100);
    const id = await buyFor(t, "cumulus");
    const version = (await subscriptionObject(env, id).get())?.version;
    const opRef = await stored(t, id, { kind: "update", amount: 4, expectedVersion: version });
    await twice(t, opRef, "changeAmount");
    expect((await subscriptionObject(env, id).get())?.amount).toBe(4);
    expect(await usageOf(t, 0, "cumulus")).toMatchObject({ usage: 4, pending: 0 });
    await expectBooksBalance(t);
  });

  it("a start is applied once, billed once, with one answer", async () => {
    const t = await tenantWithCatalog(1, 100);
    const id = await buyFor(t, "cumulus");
    const opRef = await stored(t, id, { kind: "run", action: "start" });
    await twice(t, opRef, "run");
    const runs = (await subscriptionObject(env, id).get())?.runs ?? [];
    expect(runs).toHaveLength(1);
    expect(isRunning(runs)).toBe(true);
    await expectBooksBalance(t);
  });
});
