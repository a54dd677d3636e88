import { describe, expect, it } from "vitest";
import { boughtWithOperations, call, expectOk, tenantWithCatalog } from "../helpers";

/** Lists answer in the order their documentation states. */

describe("GET /v1/operations", () => {
  it("lists oldest first, as it documents, on one page and across pages", async () => {
    const t = await tenantWithCatalog(1);
    const made = await boughtWithOperations(t, t.customers[0] as string, 8);
    const created = made.map((m) => m.op);
    const all = await expectOk(call("GET", "/v1/operations?limit=0", { token: t.partnerKey }));
    expect(all.objects.map((o: { opRef: string }) => o.opRef)).toEqual(created);
    const stamps = all.objects.map((o: { created_at: string }) => o.created_at);
    expect(stamps).toEqual([...stamps].sort());
    // Paged by cursor, the same order.
    const paged: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { objects: { opRef: string }[]; meta: { next_cursor: string | null } } = await expectOk(
        call("GET", `/v1/operations?limit=3${cursor ? `&cursor=${cursor}` : ""}`, { token: t.partnerKey }),
      );
      paged.push(...page.objects.map((o) => o.opRef));
      cursor = page.meta.next_cursor;
    } while (cursor !== null);
    expect(paged).toEqual(created);
  });
});
