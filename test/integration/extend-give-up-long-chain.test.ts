import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { OperationPayload } from "../../src/app/intents";
import { giveUpOperation } from "../../src/app/operations";
import { createOperation } from "../../src/db/operations";
import { uuidv7 } from "../../src/domain/ids";
import { subscriptionObject } from "../../src/objects/subscription-object";
import { expectBooksBalance } from "../books";
import { call, chainOf, expectOk, tenantWithCatalog } from "../helpers";

/**
 * An extension operation through a chain's first term, out of attempts after its last attempt
 * reserved the place after the chain's last term and died before creating its term. Its give-up
 * found that place by walking the chain from the term named, an object call a term, and stopped
 * after 1,000 of them: on a longer chain the place stayed the dead extension's until the recovery
 * bound, and every extension of the chain meanwhile answered 409 "another extension or renewal of
 * this chain is under way" (review of scale edges, 2026-12-05). It starts from the chain's last
 * term as the read model has it.
 */

const TERMS = 1002;

describe("an extension given up on a chain of more than 1,000 terms", () => {
  it("gives the place after the chain's last term back", async () => {
    const t = await tenantWithCatalog(1, 10);
    await expectOk(
      call("PATCH", `/v1/partners/${t.partnerId}`, { token: t.operator, body: { rate_limit: "unlimited" } }),
    );
    const customer = t.customers[0] as string;
    const chain = await chainOf(t, { resource: "mem", amount: 1, period: "1 day" }, TERMS);
    const [first, last] = [chain[0] as string, chain.at(-1) as string];

    // The last attempt reserved the place after the last term, then died before creating its term.
    const ids = { subscription: uuidv7(), order: uuidv7() };
    expect(await subscriptionObject(env, last).reserveNext(ids.subscription)).toMatchObject({ ok: true });
    const opRef = `op_${crypto.randomUUID().replaceAll("-", "")}`;
    const payload: OperationPayload = {
      kind: "extend",
      partnerId: t.partnerId,
      customerId: customer,
      at: new Date().toISOString(),
      subscription: first,
      period: "1 day",
      ids,
    };
    await createOperation(env, {
      opRef,
      partnerId: t.partnerId,
      customerId: customer,
      kind: "extend",
      payload: payload as unknown as Record<string, unknown>,
      now: new Date(),
    });
    await giveUpOperation(env, opRef);

    const given = await call("GET", `/v1/operations/${opRef}`, { token: t.partnerKey });
    expect(given.status, given.text).toBe(409);
    expect((await subscriptionObject(env, last).get())?.nextId).toBeNull();
    const again = await call("POST", `/v1/subscriptions/${first}/action/?do=extend`, { token: t.partnerKey });
    expect(again.status, again.text.slice(0, 300)).toBe(200);
    expect(again.body.extends).toBe(last);
    await expectBooksBalance(t);
  }, 600_000);
});
