import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { call, expectOk, failingD1, type Tenant, tenant } from "../helpers";

/**
 * Resolve-many "always answers 200 with every serial in one of its three lists" (README, the
 * spec's response codes). Which ledger keeps a serial is looked up in D1 (`serial_blocks`, one
 * lookup per block not yet cached): a D1 that fails there answered 500 for the whole request,
 * serials whose home was known included. The serials whose home could not be looked up now fail
 * alone, `serviceUnavailable` ("send it again"), and the others are resolved, once.
 */

const downD1: Env = { ...env, DB: failingD1(env.DB, "prepare", "batch") };

const issue = async (t: Tenant, holder: string) =>
  (
    await expectOk(
      call("POST", "/account/v1.0/commissions", {
        token: t.serviceToken,
        body: { provisions: [{ holder, source: "system", resource: t.resources[0], quantity: 1 }] },
      }),
      201,
    )
  ).serial as number;

const vmOf = async (t: Tenant, index: number) =>
  (await expectOk(call("GET", "/account/v1.0/quotas", { token: t.userTokens[index] }))).system[
    t.resources[0] as string
  ];

describe("resolve-many while D1 fails looking up a serial's home", () => {
  it("answers 200: the serials whose home is known are resolved, the others fail alone, none twice", async () => {
    const t = await tenant({ customers: 2, limit: 10 });
    const [a, b] = t.customers as [string, string];
    // Each holder's ledger hands out serials from a block of its own: two blocks, two lookups.
    const known = await issue(t, a);
    const unknown = await issue(t, b);
    // The home of `known`'s block is looked up once (and kept), as is the calling service.
    const described = await call("GET", `/account/v1.0/commissions/${known}`, { token: t.serviceToken, env });
    expect(described.status).toBe(200);

    const r = await call("POST", "/account/v1.0/commissions/action", {
      token: t.serviceToken,
      env: downD1,
      body: { accept: [known, unknown, known], reject: [] },
    });
    expect(r.status, r.text).toBe(200);
    expect(r.body.accepted).toEqual([known]);
    expect(r.body.rejected).toEqual([]);
    expect(r.body.failed).toEqual([
      [unknown, { serviceUnavailable: { message: expect.any(String), code: 503 } }],
    ]);

    // Sent again with D1 back: the one left is resolved; the one resolved is not resolved again.
    const again = await expectOk(
      call("POST", "/account/v1.0/commissions/action", {
        token: t.serviceToken,
        env,
        body: { accept: [known, unknown] },
      }),
    );
    expect(again.accepted).toEqual([unknown]);
    expect(again.failed).toEqual([
      [known, { itemNotFound: { message: `serial ${known} does not exist`, code: 404 } }],
    ]);
    expect(await vmOf(t, 0)).toEqual({ usage: 1, limit: 10, pending: 0 });
    expect(await vmOf(t, 1)).toEqual({ usage: 1, limit: 10, pending: 0 });
    expect(await expectOk(call("GET", "/account/v1.0/commissions", { token: t.serviceToken }))).toEqual([]);
  });
});
