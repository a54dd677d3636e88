import { describe, expect, it } from "vitest";
import { expectBooksBalance } from "../books";
import {
  call,
  eventually,
  expectOk,
  syndicatedProduct,
  type Tenant,
  tenantWithCatalog,
  vendorEndpoints,
  vendorTokenOf,
} from "../helpers";

/**
 * A depletable whose purchase has not taken effect is passed over by consumption reports (README,
 * "Consumption"): it is not the one in use. So the younger depletable the reports drain reads
 * `active`, on `/v1` (one and lists) and on the vendor API, not `inactive` behind it; and the one
 * waiting reads `inactive`. Once the waiting one's purchase takes effect, it is the one in use again.
 */

vendorEndpoints();

const read = (t: Tenant, id: string) =>
  expectOk(call("GET", `/v1/subscriptions/${id}/`, { token: t.partnerKey }));

const listed = async (t: Tenant, status: string, resource: string) =>
  (
    await expectOk(
      call("GET", `/v1/subscriptions/?status=${status}&resource=${resource}`, { token: t.partnerKey }),
    )
  ).objects.map((o: { id: string }) => o.id) as string[];

const report = (t: Tenant, resource: string, amount: number) =>
  expectOk(
    call("POST", `/v1/customers/${t.customers[0]}/consumption`, {
      token: t.partnerKey,
      body: { resource, amount },
    }),
  );

describe("a syndicated depletable waiting for its vendor, before a younger one deployed", () => {
  it("leaves the younger one active, which reports drain; deployed, it is the one in use", async () => {
    const t = await tenantWithCatalog(1);
    const customer = t.customers[0] as string;
    const { product, vendorId } = await syndicatedProduct(t, undefined, {
      kind: "depletable",
      unit: "GB",
      limit: 100,
    });
    const token = await vendorTokenOf(t, vendorId);
    const bought: string[] = [];
    for (let i = 0; i < 2; i++) {
      const r = await call("POST", "/v1/subscriptions/", {
        token: t.partnerKey,
        body: { objects: [{ customer, resource: product, amount: 10 }] },
      });
      expect(r.status, r.text).toBe(202);
      bought.push(
        await eventually(async () => {
          const ids = await listed(t, "all", product);
          return ids.length === i + 1 ? ids[i] : undefined;
        }, "the purchase's subscription"),
      );
    }
    const [older, younger] = bought as [string, string];
    const vendorSays = (id: string, deploymentStatus: string) =>
      expectOk(call("PATCH", `/api/subscription/${id}`, { token, body: { deploymentStatus } }));
    const api = async (id: string) =>
      (await expectOk(call("GET", `/api/subscription/${id}`, { token }))).status as string;
    await vendorSays(younger, "DEPLOYED");

    // The older one waits for its vendor: reports drain the younger one, which is in use.
    const drained = await report(t, product, 4);
    expect(drained.meta).toEqual({ unallocated: 0 });
    expect(await read(t, older)).toMatchObject({ status: "inactive", remaining: 10 });
    expect(await read(t, younger)).toMatchObject({ status: "active", remaining: 6 });
    expect(await api(younger)).toBe("ACTIVE");
    expect(await listed(t, "active", product)).toEqual([younger]);
    expect(await listed(t, "inactive", product)).toEqual([older]);

    // Deployed, the older one is the one in use, and the younger one waits behind it again.
    await vendorSays(older, "DEPLOYED");
    await eventually(async () => ((await read(t, older)).status === "active" ? true : undefined), "deployed");
    expect(await read(t, younger)).toMatchObject({ status: "inactive", remaining: 6 });
    expect(await api(younger)).toBe("INACTIVE");
    expect(await listed(t, "active", product)).toEqual([older]);
    expect(await listed(t, "inactive", product)).toEqual([younger]);
    await report(t, product, 3);
    expect(await read(t, older)).toMatchObject({ status: "active", remaining: 7 });
    expect(await read(t, younger)).toMatchObject({ status: "inactive", remaining: 6 });
    await expectBooksBalance(t);
  });
});

describe("tx bought with a syndicated line waiting for its vendor, before tx bought at once", () => {
  it("reads inactive while reports drain the younger tx, which reads active", async () => {
    const t = await tenantWithCatalog(1, 100);
    const { product, vendorId } = await syndicatedProduct(t);
    const customer = t.customers[0] as string;
    const waiting = await call("POST", "/v1/subscriptions/", {
      token: t.partnerKey,
      body: {
        objects: [
          { customer, resource: product, amount: 1, period: "1 week" },
          { customer, resource: "tx", amount: 50 },
        ],
      },
    });
    expect(waiting.status).toBe(202);
    const idOf = async (resource: string) =>
      eventually(async () => (await listed(t, "all", resource))[0], "the purchase's subscriptions");
    const [line, older] = [await idOf(product), await idOf("tx")];
    const younger = (
      await expectOk(
        call("POST", "/v1/subscriptions/", {
          token: t.partnerKey,
          body: { objects: [{ customer, resource: "tx", amount: 10 }] },
        }),
        201,
      )
    ).objects[0].id as string;

    expect((await report(t, "tx", 4)).meta).toEqual({ unallocated: 0 });
    expect(await read(t, older)).toMatchObject({ status: "inactive", remaining: 50 });
    expect(await read(t, younger)).toMatchObject({ status: "active", remaining: 6 });
    expect(await listed(t, "active", "tx")).toEqual([younger]);
    expect(await listed(t, "inactive", "tx")).toEqual([older]);

    // Its purchase takes effect: the older tx is the one in use, and drained.
    const vendorToken = await vendorTokenOf(t, vendorId);
    await expectOk(
      call("PATCH", `/api/subscription/${line}`, {
        token: vendorToken,
        body: { deploymentStatus: "DEPLOYED" },
      }),
    );
    await eventually(
      async () =>
        (await call("GET", waiting.headers.get("location") as string, { token: t.partnerKey })).status === 201
          ? true
          : undefined,
      "the purchase settled",
    );
    expect(await read(t, older)).toMatchObject({ status: "active", remaining: 50 });
    expect(await read(t, younger)).toMatchObject({ status: "inactive", remaining: 6 });
    expect(await listed(t, "active", "tx")).toEqual([older]);
    await report(t, "tx", 5);
    expect(await read(t, older)).toMatchObject({ status: "active", remaining: 45 });
    expect(await read(t, younger)).toMatchObject({ status: "inactive", remaining: 6 });
    await expectBooksBalance(t);
  });
});
