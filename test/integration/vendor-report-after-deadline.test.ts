import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { abandonOverduePurchases, VENDOR_DEADLINE_MS } from "../../src/app/operations";
import { call, eventually, expectOk, vendorEndpoints, waitingTerm } from "../helpers";

/**
 * A purchase its vendor never reported on is undone by the 7-day deadline: its subscription ends
 * still PENDING, never deployed, as one its vendor reported FAILED. Its vendor, reporting late,
 * must not be told to send UNDEPLOYED, which PENDING cannot move to (a 400): found black-box, a
 * late FAILED answered 409 "it takes only deploymentStatus UNDEPLOYED", and that UNDEPLOYED 400.
 */

vendorEndpoints();

describe("a vendor reporting on a purchase the deadline undid", () => {
  it("is answered 409 naming no report it could still make, and UNDEPLOYED 400", async () => {
    const { t, id, vendorToken: token, location } = await waitingTerm("1 week", false);
    await eventually(async () => {
      const op = await env.DB.prepare("SELECT waiting FROM operations WHERE op_ref = ?")
        .bind(location.split("/").at(-1))
        .first<{ waiting: number }>();
      return op?.waiting ? true : undefined;
    }, "waiting");
    await abandonOverduePurchases(env, new Date(Date.now() + VENDOR_DEADLINE_MS + 60_000));
    expect((await call("GET", location, { token: t.partnerKey })).status).toBe(424);
    const report = (body: unknown) => call("PATCH", `/api/subscription/${id}`, { token, body });
    expect((await expectOk(call("GET", `/api/subscription/${id}`, { token }))).deploymentStatus).toBe(
      "PENDING",
    );
    for (const body of [
      { deploymentStatus: "DEPLOYED" },
      { deploymentStatus: "FAILED" },
      { endUserInstructions: "late" },
    ]) {
      const late = await report(body);
      expect(late.status, JSON.stringify(body)).toBe(409);
      expect(late.body.detail, JSON.stringify(body)).not.toMatch(/UNDEPLOYED/);
    }
    expect((await report({ deploymentStatus: "UNDEPLOYED" })).status).toBe(400);
  });
});
