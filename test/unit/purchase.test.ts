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

describe("planPurchase: what each kind of object may cost", () => {
  it("bounds the purchase by every copy of a per-object product, not one", () => {
    // "1 day" from 09:30 ends at the next noon but one: 26.5 hours, a copy just under two thirds of the bound.
    const ip = product("ip", "per_object", Math.floor(Number(MAX_PRICE_MINOR) / 40));
    const buy = (amount: number) =>
      planPurchase([{ customer: "c", resource: "ip", amount, period: "1 day" }], [ip], now);
    const one = buy(1);
    expect(one.ok && one.totalMinor <= MAX_PRICE_MINOR).toBe(true);
    const two = buy(2);
    expect(two.ok).toBe(false);
    if (!two.ok)
      expect(two.errors).toEqual([{ point: "/objects", message: expect.stringContaining("minor units") }]);
  });

  it("refuses a cloud a month of whose running would be one usage line past the bound", () => {
    // 744 hours (a 31-day month) at the unit price: one line of that month.
    const unitPriceMinor = Number(MAX_PRICE_MINOR / 744n);
    const cloud = product("cloud", "caas", unitPriceMinor);
    const buy = (amount: number) =>
      planPurchase([{ customer: "c", resource: "cloud", amount }], [cloud], now);
    const one = buy(1);
    expect(one.ok && one.totalMinor).toBe(0n);
    const two = buy(2);
    expect(two.ok).toBe(false);
    if (!two.ok)
      expect(two.errors).toEqual([
        { point: "/objects/0/amount", message: expect.stringContaining("a month of running") },
      ]);
  });

  describe("a syndicated term, which its vendor may deploy late", () => {
    const syndicated = (unitPriceMinor: number): Product => ({
      ...product("app", "timed", unitPriceMinor),
      delivery: "syndicated",
      vendorId: "vendor",
    });
    // February: 672 hours as bought; deployed on 1 March, "1 month" lasts 744 hours (and a day's rounding).
    const february = {
      customer: "c",
      resource: "app",
      amount: 1,
      start_time: new Date("2027-02-01T12:00:00Z"),
      period: "1 month",
    };

    it("is charged what it costs as bought, not the most its deployment could make it cost", () => {
      const plan = planPurchase([february], [syndicated(100)], now);
      expect(plan.ok).toBe(true);
      if (!plan.ok) return;
      expect(plan.subscriptions.map((s) => s.priceMinor)).toEqual([67_200n]);
      expect(plan.totalMinor).toBe(67_200n);
    });

    it("is refused when its longest deployment would cost more than one term may, though as bought it fits", () => {
      const unitPriceMinor = Number(MAX_PRICE_MINOR / 700n);
      const asBought = 672n * BigInt(unitPriceMinor);
      expect(asBought <= MAX_PRICE_MINOR).toBe(true);
      const plan = planPurchase([february], [syndicated(unitPriceMinor)], now);
      expect(plan.ok).toBe(false);
      if (!plan.ok)
        expect(plan.errors).toEqual([
          { point: "/objects/0/amount", message: expect.stringMatching(/^deployed late, it costs/) },
        ]);
    });
  });
});
