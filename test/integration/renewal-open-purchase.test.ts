import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { renewOrExpire } from "../../src/app/renewals";
import { assignIds, buy, plan } from "../../src/app/subscriptions";
import { homeOf } from "../../src/domain/commissions";
import { armFault, disarmFaults } from "../../src/domain/faults";
import { subscriptionObject } from "../../src/objects/subscription-object";
import { expectBooksBalance, purchaseDiedAt, recoverAll } from "../books";
import { buyOne, ownProduct, type Tenant, tenantWithCatalog, usageOf } from "../helpers";

/**
 * A renewal asks whether its term's purchase is still open (waiting on a vendor in the same order,
 * or answered at once by a request that died before its orders) before it buys: open, the term is
 * left as it is, its renewal's place given back, until the purchase is settled. Where the term's
 * purchase is kept on the ledger the renewal's commission is issued to, the renewal's issue asks it
 * there, in the same call (one object call fewer a renewal); elsewhere it is asked apart.
 */

afterEach(() => disarmFaults());

/** `env` with the method of every call on a subscription shard or a quota ledger noted, in order. */
function noted() {
  const calls: string[] = [];
  const noting = <N extends object>(of: N): N => {
    const namespace = of as unknown as DurableObjectNamespace;
    return {
      idFromName: (name: string) => namespace.idFromName(name),
      get: (id: DurableObjectId) => {
        const stub = namespace.get(id) as unknown as Record<string, (...args: unknown[]) => unknown>;
        return new Proxy(
          {},
          {
            get: (_, m) =>
              m === "then"
                ? undefined
                : (...args: unknown[]) => {
                    calls.push(String(m));
                    return stub[m as string]?.(...args);
                  },
          },
        );
      },
    } as unknown as N;
  };
  return {
    calls,
    env: { ...env, SUBSCRIPTION: noting(env.SUBSCRIPTION), QUOTA_LEDGER: noting(env.QUOTA_LEDGER) },
  };
}

const dueIn = (record: { endTime: string | null } | null, ms: number) =>
  new Date(Date.parse(record?.endTime as string) + ms);

const renewalLines = async (t: Tenant) =>
  (
    await env.DB.prepare("SELECT COUNT(*) AS n FROM charges WHERE partner_id = ? AND kind = 'renewal'")
      .bind(t.partnerId)
      .first<{ n: number }>()
  )?.n;

/**
 * A term of `t`'s first customer, auto_renew on, whose purchase's request died after its orders:
 * it took effect, and its commission stays open until the recovery sweep settles it.
 */
async function openTerm(t: Tenant, resource = "mem") {
  const { ids } = await purchaseDiedAt(t, "purchase.ordered", [resource]);
  const id = ids.subscriptions[0] as string;
  const set = await subscriptionObject(env, id).setAutoRenew(true);
  if (!set.ok) throw new Error(JSON.stringify(set.error));
  return { id, term: set.value };
}

describe("a renewal's object calls", () => {
  it("are four: its plan, its issue (which asks whether the term's purchase is open), its create, its accept", async () => {
    const t = await tenantWithCatalog(1, 100);
    const sub = await buyOne(t, { resource: "cpu", amount: 1, period: "1 month", auto_renew: true });
    const at = new Date(Date.parse(sub.end_time) - 60_000);
    const counted = noted();
    expect(await renewOrExpire(counted.env, sub.id, at)).toBe("renewed");
    // Before, the term's purchase was asked about in a call of its own (`openRecovery`): five.
    expect(counted.calls).toEqual(["planRenewal", "issue", "create", "settleReferenced"]);
    expect(await renewalLines(t)).toBe(1);
    await expectBooksBalance(t);
  });
});

describe("a renewal of a term whose purchase is still open", () => {
  it("leaves the term as it is and gives its place back, and renews it once the purchase took effect", async () => {
    const t = await tenantWithCatalog(1, 100);
    const { id, term } = await openTerm(t);
    const over = dueIn(term, 60_000);
    expect(await renewOrExpire(env, id, over)).toBe("skipped");
    expect(await subscriptionObject(env, id).get()).toMatchObject({ endedAt: null, nextId: null });
    expect(await renewalLines(t)).toBe(0);
    expect(await usageOf(t, 0, "mem")).toMatchObject({ usage: 2, pending: 2 });
    // The sweep settles the purchase (its orders were written: it took effect); the next run renews.
    await recoverAll(t);
    expect(await renewOrExpire(env, id, over)).toBe("renewed");
    // Delivered again, it completes the same renewal: nothing more is bought.
    expect(await renewOrExpire(env, id, over)).toBe("renewed");
    expect(await renewalLines(t)).toBe(1);
    expect(await usageOf(t, 0, "mem")).toMatchObject({ usage: 2, pending: 0 });
    await expectBooksBalance(t);
  });

  it("refused before its issue could ask (its product now sold per unit consumed) is skipped, not expired", async () => {
    const t = await tenantWithCatalog(1, 100);
    const { product, put } = await ownProduct(t);
    const { id, term } = await openTerm(t, product);
    await put({ kind: "depletable", unit_price: "5.00" });
    const over = dueIn(term, 60_000);
    // Expired now, its quota would be released here and again by the purchase's undo, should it be undone.
    expect(await renewOrExpire(env, id, over)).toBe("skipped");
    expect(await subscriptionObject(env, id).get()).toMatchObject({ endedAt: null, nextId: null });
    await recoverAll(t);
    // Settled (it took effect), the term is expired by the next run, saying why it was not renewed.
    expect(await renewOrExpire(env, id, over)).toBe("failed");
    expect((await subscriptionObject(env, id).get())?.renewalError).toMatch(/per unit consumed/);
    await expectBooksBalance(t);
  });

  it("kept on another customer's ledger (bought with that customer's) is asked apart, and waited for", async () => {
    const t = await tenantWithCatalog(2, 100);
    const now = new Date();
    const objects = t.customers.map((customer) => ({
      customer,
      resource: "mem",
      amount: 2,
      period: "1 month",
      auto_renew: true,
    }));
    const planned = (await plan(env, t.partnerId, objects, now)).subscriptions;
    const ids = assignIds(planned);
    armFault("purchase.created");
    await expect(buy(env, t.partnerId, planned, ids, now)).rejects.toThrow("purchase.created");
    // The term of the customer whose ledger does not keep the purchase's commission.
    const home = homeOf(t.customers, null);
    const id = ids.subscriptions[planned.findIndex((p) => p.customer !== home)] as string;
    const term = await subscriptionObject(env, id).get();
    expect(term?.commissionHome).toBe(home);
    const counted = noted();
    expect(await renewOrExpire(counted.env, id, dueIn(term, 60_000))).toBe("skipped");
    expect(counted.calls).toEqual(["planRenewal", "openRecovery", "releaseNext"]);
    expect(await subscriptionObject(env, id).get()).toMatchObject({ endedAt: null, nextId: null });
    expect(await renewalLines(t)).toBe(0);
    // Not taken effect (no orders): the sweep undoes it, and nothing is left to renew.
    await recoverAll(t);
    expect((await subscriptionObject(env, id).get())?.endReason).toBe("failed");
    expect(await renewOrExpire(env, id, dueIn(term, 60_000))).toBe("skipped");
    expect(await renewalLines(t)).toBe(0);
    await expectBooksBalance(t);
  });
});
