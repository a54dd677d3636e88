import { describe, expect, it } from "vitest";
import { call, expectOk, PRODUCTS, type Tenant, tenant, unique, usageOf, withCatalog } from "../helpers";

/**
 * Only the owner commissions a resource: a service issues provisions only on resources registered
 * to it (`resources.service` = its name). Anything else refuses the whole commission with 400
 * badRequest, before any ledger is touched; stratus's own commissions (subscriptions) are not
 * services' and keep working.
 */

const provision = (holder: string, resource: string, quantity: number) => ({
  holder,
  source: "system",
  resource,
  quantity,
});

/** Every resource stratus holds for subscriptions, as the test catalog registers them (service "stratus"). */
const STRATUS_RESOURCES = PRODUCTS.map((p) => `stratus.${p.id}`);

const issue = (token: string, body: unknown) => call("POST", "/account/v1.0/commissions", { token, body });
const pending = (token: string) => expectOk(call("GET", "/account/v1.0/commissions", { token }));
const quotas = (t: Tenant, index = 0) =>
  expectOk(call("GET", "/account/v1.0/quotas", { token: t.userTokens[index] }));
const buy = (t: Tenant, objects: unknown[]) =>
  expectOk(call("POST", "/v1/subscriptions/", { token: t.partnerKey, body: { objects } }), 201);

/** An own commission on the first customer's ledger, accepted at once: its serial. */
async function ownSerial(t: Tenant): Promise<number> {
  const r = await expectOk(
    issue(t.serviceToken, {
      auto_accept: true,
      provisions: [provision(t.customers[0]!, t.resources[0]!, 0)],
    }),
    201,
  );
  return r.serial as number;
}

function expectRefused(r: { status: number; body: any }, resource: string) {
  expect(r.status, JSON.stringify(r.body)).toBe(400);
  expect(r.body).toEqual({ badRequest: { message: expect.any(String), code: 400 } });
  expect(r.body.badRequest.message).toContain(resource);
}

describe("the report: a partner's service releasing what a subscription holds", () => {
  it("is refused; usage stays, nothing is pending, and the limit still holds", async () => {
    const t = await tenant({ customers: 1 });
    await withCatalog(t, 10);
    const [holder] = t.customers as [string];
    await buy(t, [{ customer: holder, resource: "cpu", amount: 10, period: "1 month" }]);
    expect(await usageOf(t, 0, "cpu")).toEqual({ usage: 10, limit: 10, pending: 0 });

    const r = await issue(t.serviceToken, {
      auto_accept: true,
      provisions: [provision(holder, "stratus.cpu", -10)],
    });
    expectRefused(r, "stratus.cpu");
    expect(r.body.badRequest.message).toContain(t.serviceName);
    expect(await usageOf(t, 0, "cpu")).toEqual({ usage: 10, limit: 10, pending: 0 });
    expect(await pending(t.serviceToken)).toEqual([]);

    const more = await call("POST", "/v1/subscriptions/", {
      token: t.partnerKey,
      body: { objects: [{ customer: holder, resource: "cpu", amount: 10, period: "1 month" }] },
    });
    expect(more.status).toBe(409);
    expect(await usageOf(t, 0, "cpu")).toEqual({ usage: 10, limit: 10, pending: 0 });
  });
});

describe("a service's own resources", () => {
  it("issues, releases, accepts and rejects on them as before", async () => {
    const t = await tenant({ customers: 1, limit: 10 });
    const [holder] = t.customers as [string];
    const [vm, ram] = t.resources as [string, string];
    await expectOk(issue(t.serviceToken, { auto_accept: true, provisions: [provision(holder, vm, 4)] }), 201);
    const { serial } = await expectOk(
      issue(t.serviceToken, { provisions: [provision(holder, vm, -1), provision(holder, ram, 3)] }),
      201,
    );
    expect(await pending(t.serviceToken)).toEqual([serial]);
    expect((await quotas(t)).system).toEqual({
      [vm]: { usage: 4, limit: 10, pending: 1 },
      [ram]: { usage: 3, limit: 10, pending: 3 },
    });
    await expectOk(
      call("POST", `/account/v1.0/commissions/${serial}/action`, {
        token: t.serviceToken,
        body: { accept: "" },
      }),
    );
    const { serial: rejected } = await expectOk(
      issue(t.serviceToken, { provisions: [provision(holder, vm, -3)] }),
      201,
    );
    await expectOk(
      call("POST", `/account/v1.0/commissions/${rejected}/action`, {
        token: t.serviceToken,
        body: { reject: "" },
      }),
    );
    expect((await quotas(t)).system).toEqual({
      [vm]: { usage: 3, limit: 10, pending: 0 },
      [ram]: { usage: 3, limit: 10, pending: 0 },
    });
  });

  it("a resource registered to the service a moment ago is its own at once", async () => {
    const t = await tenant({ customers: 1, limit: 10 });
    const [holder] = t.customers as [string];
    await ownSerial(t); // the owners of what exists now are remembered
    const disk = `${t.serviceName}.disk`;
    await expectOk(
      call("PUT", `/v1/resources/${disk}`, {
        token: t.operator,
        body: { service: t.serviceName, unit: null },
      }),
    );
    await expectOk(
      call("PUT", `/v1/customers/${holder}/quotas`, {
        token: t.operator,
        body: { source: "system", resource: disk, limit: 5 },
      }),
    );
    await expectOk(
      issue(t.serviceToken, { auto_accept: true, provisions: [provision(holder, disk, 5)] }),
      201,
    );
    expect((await quotas(t)).system[disk]).toEqual({ usage: 5, limit: 5, pending: 0 });
  });
});

describe("resources stratus holds for subscriptions", () => {
  const cases = STRATUS_RESOURCES.flatMap((resource) =>
    [1, -1, -2].flatMap((quantity) =>
      [true, false].map((autoAccept) => [resource, quantity, autoAccept] as const),
    ),
  );

  it("are all registered to stratus, not to the tenant's service", async () => {
    const t = await tenant({ customers: 0 });
    await withCatalog(t);
    const registered = await expectOk(call("GET", "/account/v1.0/resources"));
    const stratus = Object.keys(registered).filter((name) => registered[name].service === "stratus");
    expect(stratus).toEqual(expect.arrayContaining(STRATUS_RESOURCES));
    expect(STRATUS_RESOURCES.every((r) => registered[r].service !== t.serviceName)).toBe(true);
  });

  it(`refuses every one of them, with positive and negative quantities, auto_accept or not (${cases.length} commissions), changing nothing`, async () => {
    const t = await tenant({ customers: 1 });
    await withCatalog(t, 100);
    const [holder] = t.customers as [string];
    // Something to release on every one of them: 2 of each product, held by stratus itself.
    await buy(
      t,
      PRODUCTS.map((p) => ({ customer: holder, resource: p.id, amount: 2, period: "1 month" })),
    );
    const before = await quotas(t);
    for (const resource of STRATUS_RESOURCES) {
      expect(before.system[resource], resource).toEqual({ usage: 2, limit: 100, pending: 0 });
    }
    const first = await ownSerial(t);

    for (const [resource, quantity, autoAccept] of cases) {
      const r = await issue(t.serviceToken, {
        auto_accept: autoAccept,
        provisions: [provision(holder, resource, quantity)],
      });
      expectRefused(r, resource);
    }
    // The same with force, which would waive the limit of a positive quantity.
    expectRefused(
      await issue(t.serviceToken, { force: true, provisions: [provision(holder, "stratus.cpu", 1000)] }),
      "stratus.cpu",
    );

    expect(await quotas(t)).toEqual(before);
    expect(await pending(t.serviceToken)).toEqual([]);
    // No serial was taken by a refused commission: the holder's ledger hands out the next one.
    expect(await ownSerial(t)).toBe(first + 1);
  });

  it("refuses a whole commission one of whose provisions is on them, wherever it stands", async () => {
    const t = await tenant({ customers: 2, limit: 10 });
    await withCatalog(t, 10);
    const [a, b] = t.customers as [string, string];
    const [vm, ram] = t.resources as [string, string];
    await buy(t, [{ customer: a, resource: "mem", amount: 5, period: "1 month" }]);
    const before = await Promise.all([quotas(t, 0), quotas(t, 1)]);
    const first = await ownSerial(t);

    const mixes = [
      [provision(a, vm, 1), provision(a, "stratus.mem", -5)],
      [provision(a, "stratus.mem", 1), provision(a, vm, 1)],
      [provision(a, vm, 1), provision(b, ram, 2), provision(b, "stratus.tx", 1)],
      [provision(b, vm, 1), provision(a, "stratus.mem", -1), provision(a, ram, 0)],
      ...STRATUS_RESOURCES.map((resource) => [provision(a, ram, 1), provision(b, resource, 1)]),
    ];
    for (const provisions of mixes) {
      for (const auto_accept of [true, false]) {
        const r = await issue(t.serviceToken, { auto_accept, provisions });
        expect(r.status, JSON.stringify(provisions)).toBe(400);
        expect(r.body.badRequest.code).toBe(400);
        expect(r.body.badRequest.message).toMatch(/stratus\./);
      }
    }

    expect(await Promise.all([quotas(t, 0), quotas(t, 1)])).toEqual(before);
    expect(await pending(t.serviceToken)).toEqual([]);
    expect(await ownSerial(t)).toBe(first + 1);
  });

  it("stratus's own commissions on them keep working: buying, changing and cancelling move the quota", async () => {
    const t = await tenant({ customers: 1 });
    await withCatalog(t, 10);
    const [holder] = t.customers as [string];
    const [sub] = (await buy(t, [{ customer: holder, resource: "cumulus", amount: 3 }])).objects;
    expect(await usageOf(t, 0, "cumulus")).toEqual({ usage: 3, limit: 10, pending: 0 });
    await expectOk(
      call("PATCH", `/v1/subscriptions/${sub.id}/`, { token: t.partnerKey, body: { amount: 7 } }),
    );
    expect(await usageOf(t, 0, "cumulus")).toEqual({ usage: 7, limit: 10, pending: 0 });
    await expectOk(call("DELETE", `/v1/subscriptions/${sub.id}/`, { token: t.partnerKey }));
    expect(await usageOf(t, 0, "cumulus")).toEqual({ usage: 0, limit: 10, pending: 0 });
  });
});

describe("another service's resources", () => {
  it("are refused even where the holder has a holding on them", async () => {
    const owner = await tenant({ customers: 0 });
    const t = await tenant({ customers: 1, limit: 10 });
    const [holder] = t.customers as [string];
    const theirs = owner.resources[0]!;
    // The operator gave the holder a limit on the other service's resource.
    await expectOk(
      call("PUT", `/v1/customers/${holder}/quotas`, {
        token: t.operator,
        body: { source: "system", resource: theirs, limit: 10 },
      }),
    );
    const before = await quotas(t);
    for (const auto_accept of [true, false]) {
      for (const quantity of [1, -1]) {
        expectRefused(
          await issue(t.serviceToken, { auto_accept, provisions: [provision(holder, theirs, quantity)] }),
          theirs,
        );
      }
    }
    expect(await quotas(t)).toEqual(before);
    expect(before.system[theirs]).toEqual({ usage: 0, limit: 10, pending: 0 });
    expect(await pending(t.serviceToken)).toEqual([]);
    expect(await pending(owner.serviceToken)).toEqual([]);
  });

  it("the owner of a resource is its registration: a service of the same partner is another service", async () => {
    const t = await tenant({ customers: 1, limit: 10 });
    const [holder] = t.customers as [string];
    const sibling = await expectOk(
      call("POST", "/v1/services", {
        token: t.operator,
        body: { partner: t.partnerId, name: unique("sib") },
      }),
      201,
    );
    const token = (
      await expectOk(call("POST", `/v1/services/${sibling.id}/tokens`, { token: t.operator, body: {} }), 201)
    ).token as string;
    const before = await quotas(t);
    expectRefused(
      await issue(token, { provisions: [provision(holder, t.resources[0]!, 1)] }),
      t.resources[0]!,
    );
    expect(await quotas(t)).toEqual(before);
    expect(await pending(token)).toEqual([]);
  });

  it("no service of another partner shares its owner's name: a resource's owner is one service", async () => {
    const a = await tenant({ customers: 1 });
    const b = await tenant({ customers: 1 });
    // Made, partner B's service named as partner A's would own A's resources.
    const named = await call("POST", "/v1/services", {
      token: b.operator,
      body: { partner: b.partnerId, name: a.serviceName },
    });
    expect({ status: named.status, detail: named.body.detail }).toEqual({
      status: 409,
      detail: `a service named ${a.serviceName} exists already`,
    });
    const taken = await call("POST", "/v1/services", {
      token: a.operator,
      body: { partner: a.partnerId, name: a.serviceName },
    });
    expect(taken.status).toBe(409);
  });
});

describe("what is answered as before", () => {
  it("an unknown resource: 404 itemNotFound NoHoldingError", async () => {
    const t = await tenant({ customers: 1, limit: 3 });
    const [holder] = t.customers as [string];
    const bad = provision(holder, unique("nobody.thing"), 1);
    const r = await issue(t.serviceToken, { provisions: [provision(holder, t.resources[0]!, 1), bad] });
    expect(r.status).toBe(404);
    expect(r.body).toEqual({
      itemNotFound: {
        message: expect.any(String),
        code: 404,
        data: { provision: bad, name: "NoHoldingError" },
      },
    });
    expect(await pending(t.serviceToken)).toEqual([]);
  });

  it("a holder that is not the partner's: 404 NoHoldingError, even on a resource of another service", async () => {
    const t = await tenant({ customers: 1 });
    const other = await tenant({ customers: 1 });
    await withCatalog(other, 10);
    for (const resource of [other.resources[0]!, "stratus.cpu"]) {
      const bad = provision(other.customers[0]!, resource, 1);
      const r = await issue(t.serviceToken, { provisions: [bad] });
      expect(r.status).toBe(404);
      expect(r.body.itemNotFound.data).toEqual({ provision: bad, name: "NoHoldingError" });
    }
  });
});
