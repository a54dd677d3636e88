import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { renewOrExpire } from "../../src/app/renewals";
import { armFault, disarmFaults } from "../../src/domain/faults";
import type { OperationMessage } from "../../src/objects/operations-queue";
import { deliver, expectBooksBalance, recoverAll } from "../books";
import { call, deployedTerm, expectOk, shardsHeld, vendorEndpoints } from "../helpers";

vendorEndpoints();
afterEach(() => disarmFaults());

/**
 * The vendor's UNDEPLOYED is about the customer's deployment of the application, the chain, not
 * one term: an extension or renewal bought before the report carried DEPLOYED on, so once the
 * reported term ended the chain was renewed (charged again) for an application its vendor had
 * deprovisioned (a review of the syndicated chains found it).
 */

/** A syndicated weekly term its vendor deployed, auto-renewing or not. */
async function deployed(autoRenew: boolean) {
  const { t, id, vendorToken, report: patch } = await deployedTerm("1 week", autoRenew);
  const report = (on: string, deploymentStatus: string) => expectOk(patch(on, deploymentStatus));
  const read = (on: string) => expectOk(call("GET", `/v1/subscriptions/${on}/`, { token: t.partnerKey }));
  const vendorRead = (on: string) => expectOk(call("GET", `/api/subscription/${on}`, { token: vendorToken }));
  const extend = async () => {
    const ext = await call("POST", `/v1/subscriptions/${id}/action/?do=extend`, { token: t.partnerKey });
    expect(ext.status, ext.text).toBe(200);
    return ext.body.id as string;
  };
  const charges = async () =>
    (await expectOk(call("GET", "/v1/charges", { token: t.partnerKey }))).objects as Array<{ kind: string }>;
  return { t, id, report, read, vendorRead, extend, charges, vendorToken };
}

describe("an extension bought before its vendor reports UNDEPLOYED on the term it follows", () => {
  it("is undeployed with it: the cron does not renew the chain at the extension's end (was: renewed, charged again)", async () => {
    const { t, id, report, read, extend, charges } = await deployed(true);
    const later = await extend();
    expect((await read(later)).deployment_status).toBe("DEPLOYED");

    await report(id, "UNDEPLOYED");
    expect((await read(later)).deployment_status).toBe("UNDEPLOYED");

    const first = await read(id);
    expect(await renewOrExpire(env, id, new Date(Date.parse(first.end_time) + 60_000))).not.toBe("renewed");
    const end = (await read(later)).end_time as string;
    expect(await renewOrExpire(env, later, new Date(Date.parse(end) + 60_000))).toBe("failed");
    const after = await read(later);
    expect(after).toMatchObject({ end_reason: "expired", descendants: [] });
    expect(after.renewal_error).toMatch(/undeployed/);
    expect((await charges()).map((c) => c.kind).sort()).toEqual(["extension", "purchase"]);
    await expectBooksBalance(t);
  });

  it("one MODIFIED a term changed, none on the PATCH retried; DEPLOYED again lifts it; ended terms stay as they were", async () => {
    const { t, id, report, read, vendorRead, extend } = await deployed(false);
    const second = await extend();
    const third = await extend();
    const before = await Promise.all([id, second, third].map(async (s) => (await vendorRead(s)).sequence));

    await report(id, "UNDEPLOYED");
    const undeployed = await Promise.all([id, second, third].map((s) => vendorRead(s)));
    expect(undeployed.map((v) => v.deploymentStatus)).toEqual(["UNDEPLOYED", "UNDEPLOYED", "UNDEPLOYED"]);
    expect(undeployed.map((v) => v.sequence)).toEqual(before.map((s) => s + 1));

    // The vendor's PATCH again (its retry): nothing changes, no event.
    await report(id, "UNDEPLOYED");
    expect(await Promise.all([id, second, third].map(async (s) => (await vendorRead(s)).sequence))).toEqual(
      before.map((s) => s + 1),
    );

    // Deployed again: the chain's later terms are deployed with it, and extend as before.
    await report(id, "DEPLOYED");
    const deployedAgain = await Promise.all([id, second, third].map((s) => vendorRead(s)));
    expect(deployedAgain.map((v) => v.deploymentStatus)).toEqual(["DEPLOYED", "DEPLOYED", "DEPLOYED"]);
    expect(deployedAgain.map((v) => v.sequence)).toEqual(before.map((s) => s + 2));
    const fourth = await extend();

    // A later term that has ended (cancelled) is left as it was; an earlier one too.
    const cancelled = await call("DELETE", `/v1/subscriptions/${fourth}/`, { token: t.partnerKey });
    expect(cancelled.status, cancelled.text).toBe(200);
    const ended = await vendorRead(fourth);
    await report(second, "UNDEPLOYED");
    expect((await vendorRead(third)).deploymentStatus).toBe("UNDEPLOYED");
    const fourthAfter = await vendorRead(fourth);
    expect(fourthAfter.deploymentStatus).toBe("DEPLOYED");
    expect(fourthAfter.sequence).toBe(ended.sequence);
    expect((await read(id)).deployment_status).toBe("DEPLOYED");
    await expectBooksBalance(t);
  });

  it("a report on a term that has ended changes no live term after it", async () => {
    const { t, id, report, read, extend } = await deployed(true);
    const later = await extend();
    // The first term is cancelled (its extension holds the chain on): its vendor, told DELETED,
    // deprovisions that term.
    const cancelled = await call("DELETE", `/v1/subscriptions/${id}/`, { token: t.partnerKey });
    expect(cancelled.status, cancelled.text).toBe(200);
    await report(id, "UNDEPLOYED");
    expect((await read(later)).deployment_status).toBe("DEPLOYED");
    await expectBooksBalance(t);
  });
});

describe("a later term its vendor reported UNDEPLOYED itself", () => {
  it("stays UNDEPLOYED when the vendor asserts DEPLOYED on the term before it: not renewed, not charged again", async () => {
    const { t, id, report, read, extend, charges } = await deployed(true);
    const later = await extend();
    // The vendor deprovisions the chain's last term; the term before it is as it was.
    await report(later, "UNDEPLOYED");
    // It asserts what it has of the term before (e.g. answering a MODIFIED of it): DEPLOYED, no change.
    await report(id, "DEPLOYED");
    expect((await read(later)).deployment_status).toBe("UNDEPLOYED");
    const end = Date.parse((await read(later)).end_time);
    expect(await renewOrExpire(env, later, new Date(end + 60_000))).toBe("failed");
    expect((await charges()).map((c) => c.kind).sort()).toEqual(["extension", "purchase"]);
    await expectBooksBalance(t);
  });

  it("keeps the terms after it UNDEPLOYED when the vendor asserts DEPLOYED on a term before it: the chain is not renewed", async () => {
    const { t, id, report, read, extend, charges } = await deployed(true);
    const second = await extend();
    const third = await extend();
    // The vendor deprovisions the chain from its second term on: the third is undeployed with it.
    await report(second, "UNDEPLOYED");
    expect((await read(third)).deployment_status, "undeployed with the second").toBe("UNDEPLOYED");
    // It asserts what it has of the first term (e.g. answering a MODIFIED of it): DEPLOYED, no change.
    // The second stays UNDEPLOYED, and so does the third, which its UNDEPLOYED undeployed.
    await report(id, "DEPLOYED");
    expect((await read(second)).deployment_status).toBe("UNDEPLOYED");
    expect((await read(third)).deployment_status, "after DEPLOYED on the first").toBe("UNDEPLOYED");
    const end = Date.parse((await read(third)).end_time);
    expect(await renewOrExpire(env, third, new Date(end + 60_000))).toBe("failed");
    expect((await charges()).map((c) => c.kind).sort()).toEqual(["extension", "extension", "purchase"]);
    await expectBooksBalance(t);
  });
});

describe("the vendor's UNDEPLOYED racing a new term of the chain", () => {
  it("an extension whose term is created after the report takes it: UNDEPLOYED, not renewed", async () => {
    const { t, id, report, read, charges } = await deployed(true);
    // The extension has its place in the chain; its term is not created yet when the report comes.
    const held = shardsHeld("create");
    const extending = call("POST", `/v1/subscriptions/${id}/action/?do=extend`, {
      token: t.partnerKey,
      env: held.env,
    });
    await held.reached;
    await report(id, "UNDEPLOYED");
    held.release();
    const ext = await extending;
    expect(ext.status, ext.text).toBe(200);
    expect(ext.body.deployment_status).toBe("UNDEPLOYED");
    expect((await read(ext.body.id)).deployment_status).toBe("UNDEPLOYED");
    const end = Date.parse(ext.body.end_time);
    expect(await renewOrExpire(env, ext.body.id, new Date(end + 60_000))).toBe("failed");
    expect((await charges()).map((c) => c.kind).sort()).toEqual(["extension", "purchase"]);
    await expectBooksBalance(t);
  });

  it("a renewal whose term is created after the report takes it, and renews no further", async () => {
    const { t, id, report, read, charges } = await deployed(true);
    const first = await read(id);
    const at = new Date(Date.parse(first.end_time) + 60_000);
    const held = shardsHeld("create");
    const renewing = renewOrExpire(held.env, id, at);
    await held.reached;
    await report(id, "UNDEPLOYED");
    held.release();
    expect(await renewing).toBe("renewed");
    const all = await expectOk(call("GET", "/v1/subscriptions/?status=all", { token: t.partnerKey }));
    const renewed = await read(all.objects.find((o: { id: string }) => o.id !== id).id);
    expect(renewed.deployment_status).toBe("UNDEPLOYED");
    const end = Date.parse(renewed.end_time);
    expect(await renewOrExpire(env, renewed.id, new Date(end + 60_000))).toBe("failed");
    expect((await charges()).map((c) => c.kind).sort()).toEqual(["purchase", "renewal"]);
    await expectBooksBalance(t);
  });

  it("a report whose walk died is finished by the vendor's retry, once", async () => {
    const { t, id, report, vendorRead, extend, vendorToken } = await deployed(false);
    const later = await extend();
    const sequence = (await vendorRead(later)).sequence;
    // The reported term commits its UNDEPLOYED, and the request dies before the term after it.
    armFault("subscription.committed");
    const died = await call("PATCH", `/api/subscription/${id}`, {
      token: vendorToken,
      body: { deploymentStatus: "UNDEPLOYED" },
    });
    expect(died.status).toBe(500);
    expect((await vendorRead(later)).deploymentStatus).toBe("DEPLOYED");
    await report(id, "UNDEPLOYED");
    const after = await vendorRead(later);
    expect(after.deploymentStatus).toBe("UNDEPLOYED");
    expect(after.sequence).toBe(sequence + 1);
    await recoverAll(t);
    await expectBooksBalance(t);
  });

  it("an extension accepted 202 before the report is refused when it runs, and runs as before once DEPLOYED again", async () => {
    const { t, id, report, charges } = await deployed(false);
    const accept = async () => {
      const queued: OperationMessage[] = [];
      const send = vi.spyOn(env.OPERATIONS, "send").mockImplementation(async (body) => {
        queued.push(body as OperationMessage);
        return undefined as never;
      });
      try {
        const accepted = await call("POST", `/v1/subscriptions/${id}/action/?do=extend`, {
          token: t.partnerKey,
          body: {},
          headers: { prefer: "respond-async" },
        });
        expect(accepted.status, accepted.text).toBe(202);
        return { queued, location: accepted.headers.get("location") as string };
      } finally {
        send.mockRestore();
      }
    };
    const refused = await accept();
    await report(id, "UNDEPLOYED");
    await deliver(refused.queued);
    const failed = await call("GET", refused.location, { token: t.partnerKey });
    expect(failed.status, failed.text).toBe(409);
    expect((await charges()).map((c) => c.kind)).toEqual(["purchase"]);

    // DEPLOYED, UNDEPLOYED and DEPLOYED again while one waits: it runs, DEPLOYED, charged once.
    await report(id, "DEPLOYED");
    const cycled = await accept();
    await report(id, "UNDEPLOYED");
    await report(id, "DEPLOYED");
    await deliver(cycled.queued);
    const done = await call("GET", cycled.location, { token: t.partnerKey });
    expect(done.status, done.text).toBe(200);
    expect(done.body.deployment_status).toBe("DEPLOYED");
    expect((await charges()).map((c) => c.kind).sort()).toEqual(["extension", "purchase"]);
    await expectBooksBalance(t);
  });
});
