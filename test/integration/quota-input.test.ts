import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { blockOf, SERIAL_BLOCK } from "../../src/domain/commissions";
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
    ["a serial past the safe integers", JSON.stringify({ reject: [2 ** 53] })],
  ];

  it.each(resolveBodies)("resolving many with %s answers 400 badRequest", async (_, raw) => {
    const r = await call("POST", "/account/v1.0/commissions/action", { token: t.serviceToken, raw });
    expect(r.status).toBe(400);
    expect(r.body.badRequest.code).toBe(400);
  });

  it("resolving many fails a serial below 1 on its own, as not found, as Astakos does", async () => {
    const r = await call("POST", "/account/v1.0/commissions/action", {
      token: t.serviceToken,
      body: { accept: [0], reject: [-3] },
    });
    expect(r.status).toBe(200);
    expect(r.body).toEqual({
      accepted: [],
      rejected: [],
      failed: [
        [0, { itemNotFound: { message: "serial 0 does not exist", code: 404 } }],
        [-3, { itemNotFound: { message: "serial -3 does not exist", code: 404 } }],
      ],
    });
  });

  it("takes a commission name of up to 4096 characters, as Astakos keeps", async () => {
    const issue = (name: string) =>
      call("POST", "/account/v1.0/commissions", { token: t.serviceToken, body: { name, provisions: [] } });
    expect((await issue("n".repeat(4096))).status).toBe(201);
    const long = await issue("n".repeat(4097));
    expect(long.status).toBe(400);
    expect(long.body.badRequest.message).toContain("/name");
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

  it("a serial below 1 names nothing: 404 before the body is read, whatever the body (0 as -3)", async () => {
    for (const serial of ["0", "-3", "000"]) {
      for (const body of [{}, { accept: "", reject: "" }, { accept: "" }]) {
        const r = await call("POST", `/account/v1.0/commissions/${serial}/action`, {
          token: t.serviceToken,
          body,
        });
        expect(r.status, `${serial} ${JSON.stringify(body)}`).toBe(404);
        expect(r.body.itemNotFound.code).toBe(404);
      }
      expect(
        (await call("GET", `/account/v1.0/commissions/${serial}`, { token: t.serviceToken })).status,
      ).toBe(404);
    }
  });

  it("an unknown path or method under /account answers a cloudFault", async () => {
    const r = await call("GET", "/account/v1.0/nothing", { token: t.serviceToken });
    expect(r.status).toBe(404);
    expect(r.body.itemNotFound.code).toBe(404);
    const m = await call("DELETE", "/account/v1.0/commissions", { token: t.serviceToken });
    expect(m.status).toBe(405);
    expect(m.body.notAllowed.message).toContain("DELETE");
    expect(m.headers.get("allow")).toBe("GET, HEAD, POST, OPTIONS");
  });
});

/** Runs SQL inside a holder's ledger, the way a request that died mid-way would have left it. */
async function inLedger<T>(
  holder: string,
  act: (sql: SqlStorage, state: DurableObjectState) => T | Promise<T>,
) {
  return runInDurableObject(ledgerOf(env, holder), (_instance, state) => act(state.storage.sql, state));
}

const holdingOf = async (holder: string, resource: string) =>
  (await ledgerOf(env, holder).holdings()).find((h) => h.resource === resource);

describe("commissions left half-way by a request that died", () => {
  it("the home ledger's alarm rolls back a multi-holder issue on every ledger", async () => {
    const t = await tenant({ customers: 2, limit: 10 });
    const vm = t.resources[0]!;
    const [home, other] = [...t.customers].sort() as [string, string];
    const provisions = [home, other].map((holder) => ({
      holder,
      source: "system",
      resource: vm,
      quantity: 4,
    }));
    const serial = 42;
    // The request recorded the issue and held both provisions, then died before deciding.
    await inLedger(home, async (sql, state) => {
      sql.exec(
        `INSERT INTO commissions (serial, service_id, reference, name, provisions, state, issue_time, updated_at, version)
         VALUES (?, ?, NULL, 'crashed', ?, 'issuing', ?, ?, 1)`,
        serial,
        t.serviceId,
        JSON.stringify(provisions),
        new Date().toISOString(),
        Date.now() - 10 * 60_000,
      );
      await state.storage.setAlarm(Date.now());
    });
    await ledgerOf(env, home).hold(serial, [provisions[0]!], false);
    await ledgerOf(env, other).hold(serial, [provisions[1]!], false);
    expect(await holdingOf(other, vm)).toMatchObject({ usage: 4, pending: 4 });

    expect(await runDurableObjectAlarm(ledgerOf(env, home))).toBe(true);

    for (const holder of [home, other])
      expect(await holdingOf(holder, vm)).toMatchObject({ usage: 0, pending: 0 });
    expect(await ledgerOf(env, home).describe(serial, t.serviceId)).toBeNull();
    expect(
      await inLedger(
        home,
        (sql) => sql.exec("SELECT state FROM commissions WHERE serial = ?", serial).one().state,
      ),
    ).toBe("failed");
    // A step of the dead request that arrives late changes nothing: the ledger remembers the serial.
    await ledgerOf(env, other).hold(serial, [provisions[1]!], false);
    expect(await holdingOf(other, vm)).toMatchObject({ usage: 0, pending: 0 });
  });

  it("leaves an issue that is still under way to its request", async () => {
    const t = await tenant({ customers: 2, limit: 10 });
    const [home] = [...t.customers].sort() as [string, string];
    await inLedger(home, async (sql, state) => {
      sql.exec(
        `INSERT INTO commissions (serial, service_id, reference, name, provisions, state, issue_time, updated_at, version)
         VALUES (43, ?, NULL, 'in flight', '[]', 'issuing', ?, ?, 1)`,
        t.serviceId,
        new Date().toISOString(),
        Date.now(),
      );
      await state.storage.setAlarm(Date.now());
    });
    expect(await runDurableObjectAlarm(ledgerOf(env, home))).toBe(true);
    expect(
      await inLedger(home, (sql) => sql.exec("SELECT state FROM commissions WHERE serial = 43").one().state),
    ).toBe("issuing");
    expect(await inLedger(home, (_sql, state) => state.storage.getAlarm())).not.toBeNull();
  });

  it("an accept that stopped half-way is completed by the next attempt, not torn by a reject", async () => {
    const t = await tenant({ customers: 2, limit: 10 });
    const vm = t.resources[0]!;
    const [home, other] = [...t.customers].sort() as [string, string];
    const provisions = t.customers.map((holder) => ({ holder, source: "system", resource: vm, quantity: 3 }));
    const { serial } = await expectOk(
      call("POST", "/account/v1.0/commissions", { token: t.serviceToken, body: { provisions } }),
      201,
    );
    // The accept recorded its decision and reached only the other ledger.
    await inLedger(home, (sql) =>
      sql.exec("UPDATE commissions SET state = 'accepting' WHERE serial = ?", serial),
    );
    await ledgerOf(env, other).accept(serial);

    const reject = await call("POST", `/account/v1.0/commissions/${serial}/action`, {
      token: t.serviceToken,
      body: { reject: "" },
    });
    expect(reject.status).toBe(404);
    for (const holder of [home, other])
      expect(await holdingOf(holder, vm)).toMatchObject({ usage: 3, pending: 0 });
    expect(await expectOk(call("GET", "/account/v1.0/commissions", { token: t.serviceToken }))).toEqual([]);
  });
});

describe("serials", () => {
  it("a ledger whose block runs out takes the next one; its serials keep increasing and are found", async () => {
    const t = await tenant({ customers: 1, limit: 100 });
    const holder = t.customers[0]!;
    const issue = async () =>
      (
        await expectOk(
          call("POST", "/account/v1.0/commissions", {
            token: t.serviceToken,
            body: { provisions: [{ holder, source: "system", resource: t.resources[0]!, quantity: 1 }] },
          }),
          201,
        )
      ).serial as number;
    const first = await issue();
    // The block's last serial is next (the object is evicted so it reads its block afresh).
    await inLedger(holder, (sql) => sql.exec("UPDATE serials SET next = ?", SERIAL_BLOCK - 1));
    await evictDurableObject(ledgerOf(env, holder));
    const last = await issue();
    const next = await issue();
    expect(blockOf(last)).toBe(blockOf(first));
    expect(blockOf(next)).toBeGreaterThan(blockOf(last));
    expect(next).toBeGreaterThan(last);
    expect(await expectOk(call("GET", "/account/v1.0/commissions", { token: t.serviceToken }))).toEqual([
      first,
      last,
      next,
    ]);
    for (const serial of [last, next]) {
      await expectOk(
        call("POST", `/account/v1.0/commissions/${serial}/action`, {
          token: t.serviceToken,
          body: { accept: "" },
        }),
      );
    }
    expect(await expectOk(call("GET", "/account/v1.0/commissions", { token: t.serviceToken }))).toEqual([
      first,
    ]);
  });
});
