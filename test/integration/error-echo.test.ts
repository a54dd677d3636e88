import { describe, expect, it } from "vitest";
import { call, syndicatedProductBody, tenantWithCatalog } from "../helpers";

/**
 * A 400 names the field and what it expects, never the value sent: a secret pasted into the wrong
 * field would otherwise go back in the answer and, under an Idempotency-Key, be kept with it for
 * 24 hours (README, Idempotency).
 */

const SECRET = "sk_live_51Hq8PastedIntoTheWrongField0123456789abcdef";

describe("what a 400 echoes", () => {
  it("names the field and the expectation, not the value", async () => {
    const t = await tenantWithCatalog(1);
    const buy = (object: Record<string, unknown>) => ({
      objects: [{ customer: t.customers[0], resource: "cpu", amount: 1, period: "1 month", ...object }],
    });
    const cases: Array<[string, string, string, unknown, string]> = [
      [
        "a purchase's resource",
        "POST",
        "/v1/subscriptions/",
        buy({ resource: SECRET }),
        "/objects/0/resource",
      ],
      ["a purchase's period", "POST", "/v1/subscriptions/", buy({ period: SECRET }), "/objects/0/period"],
      [
        "a period too long",
        "POST",
        "/v1/subscriptions/",
        buy({ period: `${SECRET} 200 years` }),
        "/objects/0/period",
      ],
      [
        "a quote's resource",
        "POST",
        "/v1/subscriptioncalculator/",
        buy({ resource: SECRET }),
        "/objects/0/resource",
      ],
      [
        "a consumption report's resource",
        "POST",
        `/v1/customers/${t.customers[0]}/consumption`,
        { resource: SECRET, amount: 1 },
        "/resource",
      ],
      [
        "a product's delivery (valibot's own message)",
        "PUT",
        "/v1/products/echo-probe",
        {
          ...syndicatedProductBody("echo-probe", t.customers[0] as string, "https://x.example/h"),
          delivery: SECRET,
        },
        "/delivery",
      ],
    ];
    for (const [what, method, path, body, point] of cases) {
      const token = method === "PUT" ? t.operator : t.partnerKey;
      const r = await call(method, path, {
        token,
        body,
        headers: { "idempotency-key": crypto.randomUUID() },
      });
      expect(r.status, `${what}: ${r.text}`).toBe(400);
      expect(
        r.body.errors.map((e: { point: string }) => e.point),
        what,
      ).toContain(point);
      expect(r.text, what).not.toContain("PastedIntoTheWrongField");
    }
  });

  it("cuts a member name it does not take past 32 characters", async () => {
    const t = await tenantWithCatalog(1);
    const r = await call("POST", "/v1/customers", { token: t.partnerKey, body: { name: "c", [SECRET]: 1 } });
    expect(r.status, r.text).toBe(400);
    expect(r.body.errors).toEqual([{ point: `/${SECRET.slice(0, 32)}…`, message: expect.any(String) }]);
    expect(r.text).not.toContain(SECRET);
  });
});
