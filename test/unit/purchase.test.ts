import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { Product } from "../../src/domain/catalog";
import { MAX_PRICE_MINOR } from "../../src/domain/money";
import { planPurchase } from "../../src/domain/purchase";

/** The price bound (README, "Exact, or refused"): what a plan prices is always exact as a number. */

const product = (id: string, kind: Product["kind"], unitPriceMinor: number): Product => ({
  id,
  name: id,
  kind,
  unit: "unit",
  unitPriceMinor,
  currency: "EUR",
  quotaResource: `stratus.${id}`,
  aliases: [],
  delivery: "builtin",
  vendorId: null,
});

const now = new Date("2027-01-05T09:30:00Z");
const PERIODS = ["1 day", "1 week", "1 month", "1 year", "10 years", "100 years"] as const;

describe("planPurchase and the price bound", () => {
  it("plans only what it can price exactly, and refuses the rest naming the object or the purchase", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10_000_000 }),
        fc.array(
          fc.record({
            kind: fc.constantFrom<Product["kind"]>("timed", "depletable"),
            amount: fc.integer({ min: 1, max: 1_000_000_000_000 }),
            period: fc.constantFrom(...PERIODS),
          }),
          { minLength: 1, maxLength: 4 },
        ),
        (unitPriceMinor, objects) => {
          const catalog = [
            product("timed", "timed", unitPriceMinor),
            product("depletable", "depletable", unitPriceMinor),
          ];
          const plan = planPurchase(
            objects.map((o) => ({ customer: "c", resource: o.kind, amount: o.amount, period: o.period })),
            catalog,
            now,
          );
          if (plan.ok) {
            for (const s of plan.subscriptions) expect(s.priceMinor <= MAX_PRICE_MINOR).toBe(true);
            expect(plan.totalMinor).toBe(plan.subscriptions.reduce((n, s) => n + s.priceMinor, 0n));
            expect(plan.totalMinor <= MAX_PRICE_MINOR).toBe(true);
          } else {
            expect(plan.errors.length).toBeGreaterThan(0);
            for (const e of plan.errors) expect(e.point).toMatch(/^\/objects(\/\d+\/amount)?$/);
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it("refuses a term one minor unit past the bound, and takes one at it", () => {
    const depletable = product("depletable", "depletable", 1);
    const at = (amount: number) =>
      planPurchase([{ customer: "c", resource: "depletable", amount }], [depletable], now);
    expect(at(Number(MAX_PRICE_MINOR)).ok).toBe(true);
    const past = at(Number(MAX_PRICE_MINOR) + 1);
    expect(past.ok).toBe(false);
    if (!past.ok)
      expect(past.errors).toEqual([
        { point: "/objects/0/amount", message: expect.stringContaining("minor units") },
      ]);
  });
});
