import { describe, expect, it } from "vitest";
import { call, chainOf, expectOk, tenantWithCatalog } from "../helpers";

/**
 * Turning auto_renew on through the first term of a chain whose last term was cancelled answers
 * 409 (auto-renew-cancelled-chain.test.ts), however long the chain. The check walked the chain an
 * object call a term and gave up after 1,000 of them, taking the term it had reached for the
 * chain's last: a chain of more terms answered 200 and showed `auto_renew: true` on terms the cron
 * will never renew (review of scale edges, 2026-12-04). It starts from the chain's last term as
 * the read model has it.
 */

const TERMS = 1002;

describe("auto_renew on a long chain cancelled at its end", () => {
  it("is refused with 409 through its first term, which keeps auto_renew off", async () => {
    const t = await tenantWithCatalog(1, 10);
    await expectOk(
      call("PATCH", `/v1/partners/${t.partnerId}`, { token: t.operator, body: { rate_limit: "unlimited" } }),
    );
    const chain = await chainOf(t, { resource: "mem", amount: 1, period: "1 day" }, TERMS);
    const [first, last] = [chain[0] as string, chain.at(-1) as string];
    await expectOk(call("DELETE", `/v1/subscriptions/${last}/`, { token: t.partnerKey }));

    const on = await call("POST", `/v1/subscriptions/${first}/action/?do=auto_renew`, {
      token: t.partnerKey,
      body: { auto_renew: true },
    });
    expect(on.status, on.text.slice(0, 200)).toBe(409);
    const read = await expectOk(call("GET", `/v1/subscriptions/${first}/`, { token: t.partnerKey }));
    expect(read.auto_renew).toBe(false);
  }, 300_000);
});
