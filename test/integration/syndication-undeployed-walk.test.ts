import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { renewOrExpire } from "../../src/app/renewals";
import { armFault, disarmFaults } from "../../src/domain/faults";
import { expectBooksBalance, recoverAll } from "../books";
import { call, deployedTerm, eventually, expectOk, vendorEndpoints } from "../helpers";

vendorEndpoints();
afterEach(() => disarmFaults());

/**
 * The vendor's UNDEPLOYED on a term is carried to the later terms of its chain one object call a
 * term (`reportDeployment`). That walk was made whole inside the vendor's request, up to 1,000
 * terms, and nothing else ever finished it: a chain longer than that (a renewed term is not ended,
 * so a daily chain walks a term a day; nothing bounds the extensions bought ahead) kept its last
 * terms DEPLOYED for good, and a request that died half-way left them so unless the vendor sent
 * the same report again (it has no reason to: the term it reported shows UNDEPLOYED, and a
 * MODIFIED saying so reaches it). Either way the chain's last term was renewed, and charged, for
 * an application its vendor had undeployed.
 */

/** A syndicated term of `period` its vendor deployed, auto-renewing. */
async function deployed(period: string) {
  const { t, id, vendorToken } = await deployedTerm(period, true);
  // A long chain's extensions are more requests than a minute's limit allows.
  await expectOk(
    call("PATCH", `/v1/partners/${t.partnerId}`, { token: t.operator, body: { rate_limit: "unlimited" } }),
  );
  const read = (on: string) => expectOk(call("GET", `/v1/subscriptions/${on}/`, { token: t.partnerKey }));
  /** Extends the chain from its last term `last` (so each extension walks nothing). */
  const extend = async (last: string) => {
    const ext = await call("POST", `/v1/subscriptions/${last}/action/?do=extend`, { token: t.partnerKey });
    expect(ext.status, ext.text).toBe(200);
    return ext.body.id as string;
  };
  const charges = async () =>
    (await expectOk(call("GET", "/v1/charges?limit=0", { token: t.partnerKey }))).objects as Array<{
      kind: string;
    }>;
  const undeployed = (on: string, tries = 100) =>
    eventually(
      async () => ((await read(on)).deployment_status === "UNDEPLOYED" ? true : undefined),
      `${on} undeployed with its chain`,
      tries,
    );
  return { t, id, read, extend, charges, vendorToken, undeployed };
}

describe("the vendor's UNDEPLOYED carried along a chain", () => {
  it("whose request died half-way is finished without the vendor's retry: the last term is not renewed (was: renewed, charged)", async () => {
    const { t, id, read, extend, charges, vendorToken, undeployed } = await deployed("1 week");
    const later = await extend(id);
    // The reported term commits its UNDEPLOYED; the request dies before the term after it.
    armFault("subscription.committed");
    const died = await call("PATCH", `/api/subscription/${id}`, {
      token: vendorToken,
      body: { deploymentStatus: "UNDEPLOYED" },
    });
    expect(died.status).toBe(500);
    // The vendor is told its report took effect (a MODIFIED showing UNDEPLOYED) and sends nothing more.
    expect((await read(id)).deployment_status).toBe("UNDEPLOYED");
    await recoverAll(t);
    await undeployed(later);
    const end = Date.parse((await read(later)).end_time);
    expect(await renewOrExpire(env, later, new Date(end + 60_000))).toBe("failed");
    expect((await charges()).map((c) => c.kind).sort()).toEqual(["extension", "purchase"]);
    await expectBooksBalance(t);
  }, 60_000);

  it("longer than one request's walk (1,002 daily terms) is undeployed to its last term, which is not renewed (was: left DEPLOYED, renewed)", async () => {
    const { t, id, read, extend, charges, vendorToken, undeployed } = await deployed("1 day");
    let last = id;
    for (let i = 0; i < 1001; i++) last = await extend(last);
    const report = await call("PATCH", `/api/subscription/${id}`, {
      token: vendorToken,
      body: { deploymentStatus: "UNDEPLOYED" },
    });
    expect(report.status, report.text).toBe(200);
    expect(report.body.deploymentStatus).toBe("UNDEPLOYED");
    await undeployed(last, 600);
    const end = Date.parse((await read(last)).end_time);
    expect(await renewOrExpire(env, last, new Date(end + 60_000))).toBe("failed");
    expect((await charges()).filter((c) => c.kind === "renewal")).toEqual([]);
    await expectBooksBalance(t);
  }, 300_000);
});
