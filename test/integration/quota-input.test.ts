import { createScheduledController } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { findCommission, openCommission, transition } from "../../src/db/commissions";
import { findService } from "../../src/db/partners";
import worker from "../../src/index";
import { ledgerOf } from "../../src/objects/quota-ledger";
import { call, expectOk, tenant } from "../helpers";

/** Bad input to the quota API: always a 4xx cloudFault, never a 500, never a write. */

describe("bad input", async () => {
  const t = await tenant({ customers: 1, limit: 10 });
  const holder = t.customers[0]!;
  const vm = t.resources[0]!;
  const good = { holder, source: "system", resource: vm, quantity: 1 };
  const without = (key: string) => Object.fromEntries(Object.entries(good).filter(([k]) => k !== key));

  const bodies: Array<[string, string]> = [
    ["not JSON", "{provisions: ["],
    ["empty body", ""],
    ["an array", JSON.stringify([good])],
    ["a string", JSON.stringify("provisions")],
    ["null", "null"],
    ["provisions missing", JSON.stringify({ name: "x" })],
    ["provisions not a list", JSON.stringify({ provisions: good })],
    ["provisions null", JSON.stringify({ provisions: null })],
    ["a provision not an object", JSON.stringify({ provisions: [1] })],
    ...(["holder", "source", "resource", "quantity"] as const).map((k): [string, string] => [
      `a provision missing ${k}`,
      JSON.stringify({ provisions: [without(k)] }),
    ]),
    ["holder not a string", JSON.stringify({ provisions: [{ ...good, holder: 7 }] })],
    ["empty resource", JSON.stringify({ provisions: [{ ...good, resource: "" }] })],
    ["non-integer quantity", JSON.stringify({ provisions: [{ ...good, quantity: 1.5 }] })],
    ["string quantity", JSON.stringify({ provisions: [{ ...good, quantity: "1" }] })],
    ["boolean quantity", JSON.stringify({ provisions: [{ ...good, quantity: true }] })],
    ["enormous quantity", JSON.stringify({ provisions: [{ ...good, quantity: 2 ** 60 }] })],
    [
      "overflowing quantity",
      `{"provisions": [{"holder": "${holder}", "source": "system", "resource": "${vm}", "quantity": 1e400}]}`,
    ],
    ["force not a boolean", JSON.stringify({ force: "yes", provisions: [good] })],
    ["auto_accept not a boolean", JSON.stringify({ auto_accept: 1, provisions: [good] })],
    ["name not a string", JSON.stringify({ name: 5, provisions: [good] })],
  ];

  it.each(bodies)("issuing with %s answers 400 badRequest and writes nothing", async (_, raw) => {
    const r = await call("POST", "/account/v1.0/commissions", { token: t.serviceToken, raw });
    expect(r.status).toBe(400);
    expect(r.body).toEqual({ badRequest: { message: expect.any(String), code: 400 } });
    expect(await expectOk(call("GET", "/account/v1.0/commissions", { token: t.serviceToken }))).toEqual([]);
    const q = await expectOk(call("GET", "/account/v1.0/quotas", { token: t.userTokens[0] }));
    expect(q.system[vm]).toEqual({ usage: 0, limit: 10, pending: 0 });
  });

  it("a field error names where it is", async () => {
    const r = await call("POST", "/account/v1.0/commissions", {
      token: t.serviceToken,
      body: { provisions: [good, { ...good, quantity: "x" }] },
    });
    expect(r.body.badRequest.message).toContain("/provisions/1/quantity");
  });

  const resolveBodies: Array<[string, string]> = [
    ["not JSON", "nope"],
    ["accept not a list", JSON.stringify({ accept: 5 })],
    ["a serial that is a string", JSON.stringify({ accept: ["5"] })],
    ["a fractional serial", JSON.stringify({ reject: [1.5] })],
    ["a negative serial", JSON.stringify({ reject: [-1] })],
  ];

  it.each(resolveBodies)("resolving many with %s answers 400 badRequest", async (_, raw) => {
    const r = await call("POST", "/account/v1.0/commissions/action", { token: t.serviceToken, raw });
    expect(r.status).toBe(400);
    expect(r.body.badRequest.code).toBe(400);
  });

  it.each([
    ["abc", "GET"],
    ["-1", "GET"],
    ["1.5", "GET"],
    ["99999999999999999999", "GET"],
    ["abc", "POST"],
  ])("a non-numeric serial %s in the path answers 404 itemNotFound", async (serial, method) => {
    const path =
      method === "GET" ? `/account/v1.0/commissions/${serial}` : `/account/v1.0/commissions/${serial}/action`;
    const r = await call(method, path, {
      token: t.serviceToken,
      ...(method === "POST" ? { body: { accept: "" } } : {}),
    });
    expect(r.status).toBe(404);
    expect(r.body.itemNotFound.code).toBe(404);
  });

  it("an unknown serial answers 404 on describe and on accept", async () => {
    for (const [method, path] of [
      ["GET", "/account/v1.0/commissions/987654"],
      ["POST", "/account/v1.0/commissions/987654/action"],
    ] as const) {
      const r = await call(method, path, {
        token: t.serviceToken,
        ...(method === "POST" ? { body: { reject: "" } } : {}),
      });
      expect(r.status).toBe(404);
      expect(r.body).toEqual({ itemNotFound: { message: "serial 987654 does not exist", code: 404 } });
    }
  });

  it("an unknown path or method under /account answers a cloudFault", async () => {
    const r = await call("GET", "/account/v1.0/nothing", { token: t.serviceToken });
    expect(r.status).toBe(404);
    expect(r.body.itemNotFound.code).toBe(404);
    const m = await call("DELETE", "/account/v1.0/commissions", { token: t.serviceToken });
    expect(m.status).toBe(400);
    expect(m.body.badRequest.message).toContain("DELETE");
  });
});

describe("commissions left half-way by a request that died", () => {
  it("the cron sweeper rolls back an unfinished issue on every ledger", async () => {
    const t = await tenant({ customers: 2, limit: 10 });
    const service = (await findService(env, t.serviceId))!;
    const vm = t.resources[0]!;
    const provisions = t.customers.map((holder) => ({ holder, source: "system", resource: vm, quantity: 4 }));
    const then = new Date(Date.now() - 10 * 60_000);
    const row = (await openCommission(env, {
      serviceId: service.id,
      reference: null,
      name: "crashed",
      provisions,
      now: then,
    }))!;
    // The request died after the first ledger took the provision.
    await ledgerOf(env, provisions[0]!.holder).issue(row.serial, [provisions[0]!], false);
    const before = await ledgerOf(env, provisions[0]!.holder).holdings();
    expect(before.find((h) => h.resource === vm)).toMatchObject({ usage: 4, pending: 4 });

    await worker.scheduled(
      createScheduledController({ scheduledTime: Date.now(), cron: "*/5 * * * *" }),
      env,
    );

    for (const holder of t.customers) {
      const after = await ledgerOf(env, holder).holdings();
      expect(after.find((h) => h.resource === vm)).toMatchObject({ usage: 0, pending: 0 });
    }
    const described = await call("GET", `/account/v1.0/commissions/${row.serial}`, { token: t.serviceToken });
    expect(described.status).toBe(404);
    // Later issues on the same serial are no-ops: the ledgers remember it as resolved.
    await ledgerOf(env, provisions[1]!.holder).issue(row.serial, [provisions[1]!], false);
    const late = await ledgerOf(env, provisions[1]!.holder).holdings();
    expect(late.find((h) => h.resource === vm)).toMatchObject({ usage: 0, pending: 0 });
  });

  it("the sweeper records, not undoes, a one-step commission its ledger already accepted", async () => {
    const t = await tenant({ customers: 1, limit: 10 });
    const service = (await findService(env, t.serviceId))!;
    const provision = { holder: t.customers[0]!, source: "system", resource: t.resources[0]!, quantity: 4 };
    const row = (await openCommission(env, {
      serviceId: service.id,
      reference: null,
      name: "accepted, then the request died",
      provisions: [provision],
      now: new Date(Date.now() - 10 * 60_000),
    }))!;
    await ledgerOf(env, provision.holder).issue(row.serial, [provision], false, true);
    await worker.scheduled(
      createScheduledController({ scheduledTime: Date.now(), cron: "*/5 * * * *" }),
      env,
    );
    expect((await findCommission(env, row.serial, service.id))?.state).toBe("accepted");
    const holdings = await ledgerOf(env, provision.holder).holdings();
    expect(holdings.find((h) => h.resource === provision.resource)).toMatchObject({ usage: 4, pending: 0 });
  });

  it("an accept that stopped half-way is completed by the next attempt, not torn by a reject", async () => {
    const t = await tenant({ customers: 2, limit: 10 });
    const vm = t.resources[0]!;
    const provisions = t.customers.map((holder) => ({ holder, source: "system", resource: vm, quantity: 3 }));
    const { serial } = await expectOk(
      call("POST", "/account/v1.0/commissions", { token: t.serviceToken, body: { provisions } }),
      201,
    );
    // The accept recorded its decision and reached only the first ledger.
    expect(await transition(env, serial, ["pending"], "accepting", new Date())).toBe(true);
    await ledgerOf(env, provisions[0]!.holder).accept(serial);

    const reject = await call("POST", `/account/v1.0/commissions/${serial}/action`, {
      token: t.serviceToken,
      body: { reject: "" },
    });
    expect(reject.status).toBe(404);
    for (const holder of t.customers) {
      const after = await ledgerOf(env, holder).holdings();
      expect(after.find((h) => h.resource === vm)).toMatchObject({ usage: 3, pending: 0 });
    }
  });
});
