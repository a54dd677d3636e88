import { describe, expect, it } from "vitest";
import { call, chainOf, expectOk, shardsAround, tenantWithCatalog } from "../helpers";

/**
 * A chain extended many times, then extended through its first term (as clients do: the id they
 * bought). The extension walked the chain's terms from that one, an object call each, on every
 * extension: past a few thousand terms, more calls than one invocation may make (review of scale
 * edges, 2026-12-04). It starts from the chain's last term as the read model has it.
 */

/** The subscription shards, counting the calls of each method. */
function countedShards() {
  const calls = new Map<string, number>();
  const counted = shardsAround((method, _, call) => {
    calls.set(method, (calls.get(method) ?? 0) + 1);
    return call();
  });
  return { env: counted, calls };
}

const TERMS = 40;

describe("extending a long chain through its first term", () => {
  it("reads a bounded number of terms, and extends the chain's last", async () => {
    const t = await tenantWithCatalog(1, 10);
    const terms = await chainOf(t, { resource: "cpu", amount: 1, period: "1 day" }, TERMS);
    const first = { id: terms[0] as string };
    const last = terms.at(-1) as string;
    const lastTerm = await expectOk(call("GET", `/v1/subscriptions/${last}/`, { token: t.partnerKey }));

    const shards = countedShards();
    const ext = await expectOk(
      call("POST", `/v1/subscriptions/${first.id}/action/?do=extend`, {
        token: t.partnerKey,
        env: shards.env,
      }),
    );
    expect(ext.extends).toBe(last);
    expect(ext.start_time).toBe(lastTerm.end_time);
    // The first term, whether the extension was made already, the last term: not one per term.
    expect(shards.calls.get("get") ?? 0).toBeLessThanOrEqual(3);

    const chain = await expectOk(call("GET", `/v1/subscriptions/${first.id}/`, { token: t.partnerKey }));
    expect(chain.descendants).toHaveLength(TERMS);
    expect(chain.descendants.at(-1)).toBe(ext.id);
  }, 120_000);
});
