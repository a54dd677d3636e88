import { describe, expect, it } from "vitest";
import { baseSourceOf, OWN_SOURCE, routeProvisions } from "../../src/domain/holders";

/** Where each provision of either dialect is held (domain/holders.ts). */

const u = "0193a4f0-0000-7000-8000-000000000101";
const p = "0193a4f0-0000-7000-8000-0000000000f1";
const isBase = (id: string) => id === u;

describe("routeProvisions", () => {
  it("leaves the spec's dialect as it is", () => {
    const wire = [{ holder: u, source: "system", resource: "vm", quantity: 1 }];
    expect(routeProvisions(wire, isBase)).toEqual({ ok: true, provisions: wire, from: wire, renamed: false });
  });

  it("holds a base project's pair once, on the member's `system` holding", () => {
    const wire = [
      { holder: `user:${u}`, source: `project:${u}`, resource: "vm", quantity: 2 },
      { holder: `project:${u}`, source: null, resource: "vm", quantity: 2 },
    ];
    const routed = routeProvisions(wire, isBase);
    expect(routed).toEqual({
      ok: true,
      provisions: [{ holder: u, source: "system", resource: "vm", quantity: 2 }],
      from: [wire[0]],
      renamed: true,
    });
  });

  it("holds another project's pair on the member's ledger and the project's", () => {
    const wire = [
      { holder: `user:${u}`, source: `project:${p}`, resource: "vm", quantity: 1 },
      { holder: `project:${p}`, source: null, resource: "vm", quantity: 1 },
    ];
    const routed = routeProvisions(wire, isBase);
    expect(routed.ok && routed.provisions).toEqual([
      { holder: u, source: `project:${p}`, resource: "vm", quantity: 1 },
      { holder: `project:${p}`, source: OWN_SOURCE, resource: "vm", quantity: 1 },
    ]);
  });

  it("refuses a base project's own provision without its member's, and a user's without a source", () => {
    const own = { holder: `project:${u}`, source: null, resource: "vm", quantity: 1 };
    expect(routeProvisions([own], isBase).ok).toBe(false);
    const member = { holder: `user:${u}`, source: `project:${u}`, resource: "vm", quantity: 3 };
    expect(routeProvisions([member, own], isBase).ok).toBe(false);
    // A user's holding without a source is none: named, for the 404 NoHoldingError Astakos answers.
    const sourceless = { ...member, source: null };
    expect(routeProvisions([sourceless], isBase)).toEqual({ ok: false, missing: sourceless });
    // Nor does another user's in a customer's base project: its one member is that customer.
    const stranger = { ...member, holder: "user:someone-else" };
    expect(routeProvisions([stranger, own], isBase)).toEqual({ ok: false, missing: stranger });
  });

  it("takes what members of a project take from its cap too: their provisions must add up to its own", () => {
    const a = { holder: `user:${u}`, source: `project:${p}`, resource: "vm", quantity: 2 };
    const b = {
      holder: "user:0193a4f0-0000-7000-8000-0000000000b2",
      source: `project:${p}`,
      resource: "vm",
      quantity: 1,
    };
    const own = (quantity: number) => ({ holder: `project:${p}`, source: null, resource: "vm", quantity });
    expect(routeProvisions([a, b, own(3)], isBase).ok).toBe(true);
    expect(
      routeProvisions([a, own(2), { ...a, resource: "ram" }, { ...own(2), resource: "ram" }], isBase).ok,
    ).toBe(true);
    for (const unpaired of [[a], [own(1)], [a, b, own(2)], [a, own(2), { ...a, resource: "ram" }]]) {
      const routed = routeProvisions(unpaired, isBase);
      expect(routed.ok).toBe(false);
      expect(!routed.ok && "message" in routed && routed.message).toMatch(/must be equal/);
    }
    // A project that is not the issuer's partner's is the ledger's to refuse (NoHoldingError).
    expect(routeProvisions([a], isBase, () => false).ok).toBe(true);
  });
});

describe("baseSourceOf: the holding a customer's limit is set on", () => {
  it("is the base project whatever the dialect calls it, and nothing for another project or a free name", () => {
    expect(baseSourceOf(u, "system")).toBe("system");
    expect(baseSourceOf(u, u)).toBe("system");
    expect(baseSourceOf(u, `project:${u}`)).toBe("system");
    expect(baseSourceOf(u, `project:${p}`)).toBeNull();
    expect(baseSourceOf(u, "pool")).toBeNull();
  });
});
