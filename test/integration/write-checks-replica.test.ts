import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { findResource, upsertResource } from "../../src/db/resources";
import { setSyndication } from "../../src/db/vendors";
import {
  call,
  expectOk,
  replicaBehind,
  snapshotOf,
  syndicatedProduct,
  syndicatedProductBody,
  tenant,
  tenantWithCatalog,
  unique,
  vendorTokenOf,
} from "../helpers";

/**
 * A write that checks what D1 holds before it writes (a resource's owner, a name another product
 * has, a product's vendor, the depletables a report drains) must not decide on a replica: here the
 * replica is a write behind the bookmark the caller sends, and the check passes what the primary
 * refuses. A write's session starts on the primary whatever bookmark it is sent (README, "Read
 * replication"), and the writes that take an owner's word check it again as they write (a review of
 * 2026-12-03 found all of them deciding on the replica).
 */

describe("a write's check, sent with a bookmark a replica is as new as", () => {
  it("a registered resource keeps its service: another service answers 409, even from a replica behind", async () => {
    const a = await tenant({ customers: 0 });
    const b = await tenant({ customers: 0 });
    const serviceA = (await expectOk(call("GET", "/account/v1.0/resources")))[`${a.serviceName}.vm`]
      ?.service as string;
    const serviceB = (await expectOk(call("GET", "/account/v1.0/resources")))[`${b.serviceName}.vm`]
      ?.service as string;
    expect(serviceA).toBeTruthy();
    expect(serviceB).toBeTruthy();
    const lagged = await snapshotOf("resources");
    const name = `${serviceA}.${unique("disk")}`.replace(/[^a-zA-Z0-9._-]/g, "-");
    const registered = await call("PUT", `/v1/resources/${name}`, {
      token: a.operator,
      body: { service: serviceA, unit: null },
    });
    expect(registered.status, registered.text).toBe(200);
    const bookmark = registered.headers.get("x-d1-bookmark") as string;

    // The operator (another console of it) registers the name again, for service B, sending the
    // bookmark it has; the replica that serves it has not applied the registration yet.
    const moved = await call("PUT", `/v1/resources/${name}`, {
      token: a.operator,
      body: { service: serviceB, unit: null },
      headers: { "x-d1-bookmark": bookmark },
      env: replicaBehind("resources", lagged),
    });
    const owner = (await expectOk(call("GET", "/account/v1.0/resources")))[name]?.service;
    expect([moved.status, owner]).toEqual([409, serviceA]);
  });

  it("an alias another product has answers 409, even from a replica behind", async () => {
    const t = await tenant({ customers: 0 });
    await expectOk(
      call("PUT", "/v1/resources/stratus.cpu", {
        token: t.operator,
        body: { service: "stratus", unit: "GHz" },
      }),
    );
    const product = (id: string, aliases: string[]) => ({
      name: id,
      kind: "timed",
      unit: "GHz",
      unit_price: "0.02",
      currency: "EUR",
      quota_resource: "stratus.cpu",
      aliases,
    });
    const [first, second, alias] = [unique("p1"), unique("p2"), unique("alias")].map((s) =>
      s.replace(/[^a-z0-9-]/gi, "-").toLowerCase(),
    ) as [string, string, string];
    const lagged = await snapshotOf("products");
    const put = await call("PUT", `/v1/products/${first}`, {
      token: t.operator,
      body: product(first, [alias]),
    });
    expect(put.status, put.text).toBe(200);
    const bookmark = put.headers.get("x-d1-bookmark") as string;

    const clash = await call("PUT", `/v1/products/${second}`, {
      token: t.operator,
      body: product(second, [alias]),
      headers: { "x-d1-bookmark": bookmark },
      env: replicaBehind("products", lagged),
    });
    expect(clash.status, clash.text).toBe(409);
  });

  it("a vendor a product was taken from cannot set its endpoint or rotate its secret, even from a replica behind", async () => {
    const t = await tenant({ customers: 1 });
    const { product, vendorId } = await syndicatedProduct(t, "old-vendor.example");
    const oldVendor = await vendorTokenOf(t, vendorId);
    const seen = await call("PUT", `/v1/products/${product}/endpoint`, {
      token: oldVendor,
      body: { endpoint: "https://old-vendor.example/v2" },
    });
    expect(seen.status, seen.text).toBe(200); // while it is the product's vendor
    const bookmark = seen.headers.get("x-d1-bookmark") as string;
    const lagged = await snapshotOf("products");

    // The operator hands the (unsold) product to another vendor, with an endpoint and a secret of its own.
    const other = await expectOk(
      call("POST", "/v1/vendors", { token: t.operator, body: { name: "New" } }),
      201,
    );
    const moved = await expectOk(
      call("PUT", `/v1/products/${product}`, {
        token: t.operator,
        body: syndicatedProductBody(product, other.id, "https://new-vendor.example/hooks"),
      }),
    );
    expect(moved.vendor).toBe(other.id);

    // The old vendor, with the bookmark it has, served by a replica that has not seen the change.
    const lagging = replicaBehind("products", lagged);
    const endpoint = await call("PUT", `/v1/products/${product}/endpoint`, {
      token: oldVendor,
      body: { endpoint: "https://old-vendor.example/stolen" },
      headers: { "x-d1-bookmark": bookmark },
      env: lagging,
    });
    const rotated = await call("POST", `/v1/products/${product}/signing-secret`, {
      token: oldVendor,
      headers: { "x-d1-bookmark": bookmark },
      env: lagging,
    });
    const row = await env.DB.prepare("SELECT endpoint FROM products WHERE id = ?").bind(product).first<{
      endpoint: string;
    }>();
    expect([endpoint.status, rotated.status, row?.endpoint]).toEqual([
      404,
      404,
      "https://new-vendor.example/hooks",
    ]);
  });

  it("a consumption report drains the customer's depletable, even sent with a bookmark older than its purchase", async () => {
    const t = await tenantWithCatalog(1);
    const before = await call("GET", `/v1/customers/${t.customers[0]}`, { token: t.partnerKey });
    const bookmark = before.headers.get("x-d1-bookmark") as string;
    const lagged = await snapshotOf("subscriptions");
    const bought = await expectOk(
      call("POST", "/v1/subscriptions", {
        token: t.partnerKey,
        body: { objects: [{ customer: t.customers[0], resource: "tx", amount: 10 }] },
      }),
      201,
    );
    // The partner's service reports traffic, sending the bookmark it last saw (before the purchase).
    const report = await call("POST", `/v1/customers/${t.customers[0]}/consumption`, {
      token: t.partnerKey,
      body: { resource: "tx", amount: 5 },
      headers: { "x-d1-bookmark": bookmark },
      env: replicaBehind("subscriptions", lagged),
    });
    expect(report.status, report.text).toBe(200);
    expect([report.body.meta.unallocated, report.body.objects.map((o: { id: string }) => o.id)]).toEqual([
      0,
      [bought.objects[0].id],
    ]);
  });

  it("the writes that take an owner's word check it again in their own statement", async () => {
    const t = await tenant({ customers: 1 });
    const name = `${t.serviceName}.guarded`;
    await expectOk(
      call("PUT", `/v1/resources/${name}`, { token: t.operator, body: { service: t.serviceName } }),
    );
    // Another service's registration, written as a check that read nothing would let it through.
    expect(await upsertResource(env, { name, service: "another", description: "" })).toBeUndefined();
    expect((await findResource(env, name))?.service).toBe(t.serviceName);
    const { product, vendorId } = await syndicatedProduct(t);
    expect(await setSyndication(env, product, { endpoint: "https://taken.example/hooks" }, "another")).toBe(
      false,
    );
    expect(await setSyndication(env, product, { endpoint: "https://kept.example/hooks" }, vendorId)).toBe(
      true,
    );
  });
});
