import { describe, expect, it } from "vitest";
import { call, expectOk, tenantWithCatalog } from "../helpers";

/**
 * README, "Collection conventions": "A `cursor` this API did not issue answers 400 naming
 * `/cursor` (not an empty page, which would read as the end of the list)." A cursor is the
 * base64url of a row's key; one that decodes to printable text that is no key of the list ("zzz",
 * "hello world") paged from nowhere, answering 200 with no rows and `next_cursor` null.
 */

const cursorOf = (key: string) => btoa(key).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");

describe("a cursor this API did not issue", async () => {
  const t = await tenantWithCatalog(1);
  const customer = t.customers[0] as string;
  for (let i = 0; i < 2; i++) {
    await expectOk(
      call("POST", "/v1/subscriptions/", {
        token: t.partnerKey,
        body: { objects: [{ customer, resource: "cpu", amount: 1, period: "1 day" }] },
        headers: i === 0 ? { prefer: "respond-async" } : {},
      }),
      i === 0 ? 202 : 201,
    );
  }
  const month = new Date().toISOString().slice(0, 7);
  const lists = [
    "/v1/subscriptions/",
    "/v1/groupedsubscriptions/",
    "/v1/customers",
    "/v1/orders",
    "/v1/operations",
    "/v1/charges",
    `/v1/customers/${customer}/statements/${month}`,
  ];

  it("answers 400 naming /cursor on every list, not an empty page", async () => {
    for (const path of [...lists, "/v1/webhooks/deliveries"]) {
      const token = path === "/v1/webhooks/deliveries" ? t.operator : t.partnerKey;
      for (const key of ["zzz", "hello world", "0"]) {
        const r = await call("GET", `${path}?cursor=${cursorOf(key)}`, { token });
        expect(r.status, `${path} ${key}`).toBe(400);
        expect(r.body.errors, `${path} ${key}`).toEqual([{ point: "/cursor", message: expect.any(String) }]);
      }
    }
  });

  it("still pages on the cursors it issued", async () => {
    for (const path of lists) {
      const first = await expectOk(call("GET", `${path}?limit=1`, { token: t.partnerKey }));
      const all = await expectOk(call("GET", `${path}?limit=0`, { token: t.partnerKey }));
      if (first.meta.next_cursor === null) continue;
      const next = await expectOk(
        call("GET", `${path}?limit=500&cursor=${first.meta.next_cursor}`, { token: t.partnerKey }),
      );
      expect(next.objects.length, path).toBe(all.objects.length - 1);
    }
  });
});
