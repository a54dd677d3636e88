import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { extend } from "../../src/app/extend";
import { subscriptionIdBeside, uuidv7 } from "../../src/domain/ids";
import { partnerScope } from "../../src/domain/scope";
import { call, expectOk, type Tenant, tenantWithCatalog } from "../helpers";

/**
 * An extension accepted as an operation (202) gets its ids when it is accepted, and is bought
 * when the operation runs. Another extension answered at once meanwhile becomes the term it
 * follows, though its id sorts after it: the chain's order is not its ids' order.
 */
/** A tenant, and a week of cpu bought for its customer. */
async function aWeek() {
  const t = await tenantWithCatalog(1, 100);
  const first = await expectOk(
    call("POST", "/v1/subscriptions/", {
      token: t.partnerKey,
      body: { objects: [{ customer: t.customers[0], resource: "cpu", amount: 1, period: "1 week" }] },
    }),
    201,
  ).then((b) => b.objects[0]);
  return { t, first };
}

/**
 * An extension of `first` accepted as an operation (its ids chosen then), overtaken by one
 * answered at once (`second`), then run as perform() runs it: it extends `second` (`third`).
 */
async function overtaken(t: Tenant, first: string) {
  const queuedIds = { subscription: subscriptionIdBeside(first), order: uuidv7() };
  await new Promise((r) => setTimeout(r, 5));
  const second = await expectOk(
    call("POST", `/v1/subscriptions/${first}/action/?do=extend`, { token: t.partnerKey, body: {} }),
  );
  const third = await extend(env, partnerScope(t.partnerId), first, {}, queuedIds, new Date());
  return { second, third };
}

describe("a chain whose terms' ids do not sort in its order (an extension accepted 202, overtaken)", () => {
  it("grouped end_time and descendants follow the chain, not the ids", async () => {
    const { t, first } = await aWeek();
    const { second, third } = await overtaken(t, first.id);
    expect(third.previousId).toBe(second.id);
    expect(Date.parse(third.endTime as string)).toBeGreaterThan(Date.parse(second.end_time));

    const grouped = await expectOk(
      call("GET", "/v1/groupedsubscriptions/?resource=cpu", { token: t.partnerKey }),
    );
    const chain = grouped.objects.find((o: { id: string }) => o.id === first.id);
    // The chain ends when its last term does.
    expect(chain.end_time).toBe(third.endTime);
    expect(chain.descendants).toEqual([second.id, third.id]);
    // `second` is followed by `third`.
    const secondRead = await expectOk(
      call("GET", `/v1/subscriptions/${second.id}/`, { token: t.partnerKey }),
    );
    expect(secondRead.descendants).toEqual([third.id]);
  });

  it("grouped auto_renew is the flag of the term that renews: the chain's last", async () => {
    const { t, first } = await aWeek();
    const { third } = await overtaken(t, first.id);
    // Renewal switched on for the chain's last term, the one the cron renews (and charges).
    const on = await expectOk(
      call("POST", `/v1/subscriptions/${third.id}/action/?do=auto_renew`, {
        token: t.partnerKey,
        body: { auto_renew: true },
      }),
    );
    expect(on.auto_renew).toBe(true);
    const grouped = await expectOk(
      call("GET", "/v1/groupedsubscriptions/?resource=cpu", { token: t.partnerKey }),
    );
    const chain = grouped.objects.find((o: { id: string }) => o.id === first.id);
    expect(chain.auto_renew).toBe(true);
  });

  it("through HTTP alone: an extension answered 202, overtaken by one answered at once", async () => {
    const { t, first } = await aWeek();
    const queued = await call("POST", `/v1/subscriptions/${first.id}/action/?do=extend`, {
      token: t.partnerKey,
      body: {},
      headers: { prefer: "respond-async" },
    });
    expect(queued.status).toBe(202);
    // Answered at once, before the queue delivers the first (about a second later).
    const second = await expectOk(
      call("POST", `/v1/subscriptions/${first.id}/action/?do=extend`, { token: t.partnerKey, body: {} }),
    );
    let done = await call("GET", queued.headers.get("location") as string, { token: t.partnerKey });
    for (let i = 0; i < 100 && done.status === 202; i++) {
      await new Promise((r) => setTimeout(r, 100));
      done = await call("GET", queued.headers.get("location") as string, { token: t.partnerKey });
    }
    expect(done.status, done.text).toBe(200);
    const third = done.body;
    expect(third.extends).toBe(second.id);
    const grouped = await expectOk(
      call("GET", "/v1/groupedsubscriptions/?resource=cpu", { token: t.partnerKey }),
    );
    const chain = grouped.objects.find((o: { id: string }) => o.id === first.id);
    expect({ end_time: chain.end_time, descendants: chain.descendants }).toEqual({
      end_time: third.end_time,
      descendants: [second.id, third.id],
    });
  });
});
