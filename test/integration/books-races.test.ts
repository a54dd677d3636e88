import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { renewOrExpire } from "../../src/app/renewals";
import { armFault, disarmFaults } from "../../src/domain/faults";
import { subscriptionObject } from "../../src/objects/subscription-object";
import { expectBooksBalance, recoverAll } from "../books";
import { call, expectOk, ledgersHeld, tenantWithCatalog, usageOf } from "../helpers";

/**
 * Races the concurrent property (books-concurrent.property.test.ts) found: the cron's renewal
 * decides from the term as `planRenewal` read it, then asks the ledger whether the term's purchase
 * is still open, and only then expires it; and an extension whose request died before it existed.
 */

async function term(t: Awaited<ReturnType<typeof tenantWithCatalog>>, autoRenew: boolean) {
  const bought = await expectOk(
    call("POST", "/v1/subscriptions/", {
      token: t.partnerKey,
      body: {
        objects: [
          { customer: t.customers[0], resource: "mem", amount: 2, period: "1 month", auto_renew: autoRenew },
        ],
      },
    }),
    201,
  );
  const sub = bought.objects[0] as { id: string; end_time: string };
  return { id: sub.id, over: new Date(Date.parse(sub.end_time) + 1000) };
}

/** A term over with auto_renew off, and the cron's run on it held once it planned the expiry. */
/**
 * An extension of `id` whose request dies in the ledger once it has reserved the place after the
 * term: the place stays its own until `release` lets the request die (its answer, a 500).
 */
async function extensionDyingInLedger(t: Awaited<ReturnType<typeof tenantWithCatalog>>, id: string) {
  const dying = ledgersHeld(["issue"], "die");
  const answer = call("POST", `/v1/subscriptions/${id}/action/?do=extend`, {
    token: t.partnerKey,
    body: {},
    env: dying.env,
  });
  await dying.reached;
  return { answer, release: dying.release };
}

async function expiryOnItsWay(t: Awaited<ReturnType<typeof tenantWithCatalog>>) {
  const { id, over } = await term(t, false);
  const held = ledgersHeld(["openRecovery"]);
  const cron = renewOrExpire(held.env, id, over);
  // planRenewal decided "expire"; the check of its purchase is on its way.
  await held.reached;
  return { id, over, held, cron };
}

afterEach(() => disarmFaults());

describe("auto_renew turned on while the cron expires the term", () => {
  it("renews the term: the toggle answered 200, so the expiry planned before it does not happen", async () => {
    const t = await tenantWithCatalog(1, 100);
    const { id, held, cron } = await expiryOnItsWay(t);
    const toggled = await call("POST", `/v1/subscriptions/${id}/action/?do=auto_renew`, {
      token: t.partnerKey,
      body: {},
    });
    expect(toggled.status).toBe(200);
    expect(toggled.body.auto_renew).toBe(true);
    held.release();
    expect(await cron).toBe("renewed");
    const r = await subscriptionObject(env, id).get();
    expect(r).toMatchObject({ autoRenew: true, endReason: null });
    expect(r?.nextId).not.toBeNull();
    await expectBooksBalance(t);
  });
});

describe("an extension without a key whose request died before it existed", () => {
  it("gives its place in the chain back at once, so a cancel then releases the chain's quota", async () => {
    const t = await tenantWithCatalog(1, 6);
    const { id } = await term(t, false);
    armFault("purchase.issued");
    const died = await call("POST", `/v1/subscriptions/${id}/action/?do=extend`, {
      token: t.partnerKey,
      body: {},
    });
    expect(died.status).toBe(500);
    disarmFaults();
    // Held for an extension that will never exist, the place kept the chain's quota after a cancel.
    expect((await subscriptionObject(env, id).get())?.nextId).toBeNull();
    await expectOk(call("DELETE", `/v1/subscriptions/${id}/`, { token: t.partnerKey }));
    expect(await usageOf(t, 0, "mem")).toMatchObject({ usage: 0, pending: 0 });
    await expectBooksBalance(t);
  });
});

describe("a keyed extension whose first attempt died after reserving its place, retried after a cancel", () => {
  it("answers 409 and gives the place back, so the cancelled chain's quota is released at once", async () => {
    const t = await tenantWithCatalog(1, 6);
    const { id } = await term(t, false);
    const extend = () =>
      call("POST", `/v1/subscriptions/${id}/action/?do=extend`, {
        token: t.partnerKey,
        body: {},
        headers: { "Idempotency-Key": "extend-after-cancel" },
      });
    // The reservation is committed; its instance dies before it answers.
    armFault("subscription.committed");
    expect((await extend()).status).toBe(500);
    disarmFaults();
    expect((await subscriptionObject(env, id).get())?.nextId).not.toBeNull();
    await expectOk(call("DELETE", `/v1/subscriptions/${id}/`, { token: t.partnerKey }));
    const retried = await extend();
    expect(retried.status).toBe(409);
    expect(retried.body.detail).toMatch(/was cancelled/);
    // Before, the place stayed the dead attempt's until the recovery bound, and with it the hold.
    expect(await subscriptionObject(env, id).get()).toMatchObject({ nextId: null, holdReleased: true });
    expect(await usageOf(t, 0, "mem")).toMatchObject({ usage: 0, pending: 0 });
    await expectBooksBalance(t);
  });
});

describe("an extension taking the place while the cron's expiry is on its way, then dying", () => {
  it("leaves the term unexpired, so with auto_renew turned on meanwhile the next run renews it", async () => {
    const t = await tenantWithCatalog(1, 100);
    const { id, over, held, cron } = await expiryOnItsWay(t);
    const toggled = await call("POST", `/v1/subscriptions/${id}/action/?do=auto_renew`, {
      token: t.partnerKey,
      body: { auto_renew: true },
    });
    expect(toggled.status).toBe(200);
    // An extension by hand reserves the place after the term, and its request dies in the ledger.
    const extension = await extensionDyingInLedger(t, id);
    held.release();
    expect(await cron).toBe("skipped");
    extension.release();
    expect((await extension.answer).status).toBe(500);
    // Before, the planned expiry ended the term anyway: auto-renewing, expired, never renewed.
    expect(await subscriptionObject(env, id).get()).toMatchObject({
      endedAt: null,
      autoRenew: true,
      nextId: null,
    });
    expect(await renewOrExpire(env, id, over)).toBe("renewed");
    await expectBooksBalance(t);
  });
});

describe("an extension while another, whose request died, still holds the chain's next place", () => {
  it("answers 409 at once: it does not try the taken place again and again", async () => {
    const t = await tenantWithCatalog(1, 6);
    const { id } = await term(t, false);
    // A keyed extension reserved the place; its instance died before it answered.
    armFault("subscription.committed");
    const died = await call("POST", `/v1/subscriptions/${id}/action/?do=extend`, {
      token: t.partnerKey,
      body: {},
      headers: { "Idempotency-Key": "extend-died-reserved" },
    });
    expect(died.status).toBe(500);
    disarmFaults();
    let reservations = 0;
    const counted = {
      idFromName: (name: string) => env.SUBSCRIPTION.idFromName(name),
      get: (shard: DurableObjectId) => {
        const stub = env.SUBSCRIPTION.get(shard) as unknown as Record<
          string,
          (...args: unknown[]) => unknown
        >;
        return new Proxy(
          {},
          {
            get: (_, m) =>
              m === "then"
                ? undefined
                : (...args: unknown[]) => {
                    if (m === "reserveNext") reservations++;
                    return stub[m as string]?.(...args);
                  },
          },
        );
      },
    };
    const another = await call("POST", `/v1/subscriptions/${id}/action/?do=extend`, {
      token: t.partnerKey,
      body: {},
      env: { ...env, SUBSCRIPTION: counted as unknown as Env["SUBSCRIPTION"] },
    });
    expect(another.status, JSON.stringify(another.body)).toBe(409);
    expect(another.body.detail).toMatch(/under way/);
    // Before, it asked for the place 1,000 times (3,000 object calls) before answering 409.
    expect(reservations).toBe(1);
    // The keyed attempt, retried, finishes its own extension.
    const retried = await call("POST", `/v1/subscriptions/${id}/action/?do=extend`, {
      token: t.partnerKey,
      body: {},
      headers: { "Idempotency-Key": "extend-died-reserved" },
    });
    expect(retried.status).toBe(200);
    await expectBooksBalance(t);
  });
});

describe("auto_renew turned on for an expired term while an extension of it holds its place, which then fails", () => {
  it("is off again once the place is given back: an ended term nothing follows renews nothing", async () => {
    const t = await tenantWithCatalog(1, 100);
    const { id, over } = await term(t, false);
    expect(await renewOrExpire(env, id, over)).toBe("expired");
    // An extension of the expired term reserved its place; its request dies in the ledger.
    const extension = await extensionDyingInLedger(t, id);
    // While the place is the extension's, the chain may go on: the flag is taken, for the chain.
    const toggled = await call("POST", `/v1/subscriptions/${id}/action/?do=auto_renew`, {
      token: t.partnerKey,
      body: { auto_renew: true },
    });
    expect(toggled.status).toBe(200);
    extension.release();
    expect((await extension.answer).status).toBe(500);
    // The extension never came: its place is given back (at once, or by recovery past the bound).
    await recoverAll(t);
    const r = await subscriptionObject(env, id).get();
    expect(r).toMatchObject({ endReason: "expired", nextId: null, renewalError: null });
    // Before, it stayed on: an expired term, nothing after it, telling the partner it will renew.
    expect(r?.autoRenew).toBe(false);
    const read = await expectOk(call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey }));
    expect(read.auto_renew).toBe(false);
    await expectBooksBalance(t);
  });
});
