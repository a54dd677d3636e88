import { describe, expect, it } from "vitest";
import { boughtWithOperations, call, expectOk, tenantWithCatalog } from "../helpers";

/**
 * DESIGN.md's operator "sees everything": the lists of subscriptions, chains, orders and
 * operations answered it 403 ("a partner's list"), so an operator client could read any one object
 * but list none. It now lists every partner's, narrowed by `?customer=` as a partner's is.
 */
describe("the operator's lists", () => {
  it("show every partner's subscriptions, chains, orders and operations; ?customer= narrows them", async () => {
    const [a, b] = [await tenantWithCatalog(1), await tenantWithCatalog(1)];
    const [boughtA] = await boughtWithOperations(a, a.customers[0] as string, 1);
    const [boughtB] = await boughtWithOperations(b, b.customers[0] as string, 1);
    const list = (path: string) => expectOk(call("GET", path, { token: a.operator }));
    const ids = async (path: string, key: string) =>
      ((await list(path)).objects as Array<Record<string, string>>).map((o) => o[key]);

    for (const [path, key, of] of [
      ["/v1/subscriptions/?status=all&limit=500", "id", "id"],
      ["/v1/groupedsubscriptions/?status=all&limit=500", "id", "id"],
      ["/v1/orders?limit=500", "id", "order"],
      ["/v1/operations?limit=500", "opRef", "op"],
    ] as const) {
      const all = await ids(path, key);
      expect(all, path).toEqual(expect.arrayContaining([boughtA?.[of], boughtB?.[of]]));
      const sep = path.includes("?") ? "&" : "?";
      expect(await ids(`${path}${sep}customer=${b.customers[0]}`, key), path).toEqual(
        expect.arrayContaining([boughtB?.[of]]),
      );
      expect(await ids(`${path}${sep}customer=${b.customers[0]}`, key), path).not.toContain(boughtA?.[of]);
    }
    // A partner still sees only its own.
    const own = await expectOk(call("GET", "/v1/orders?limit=500", { token: a.partnerKey }));
    expect(own.objects.map((o: { id: string }) => o.id)).not.toContain(boughtB?.order);
  });
});
