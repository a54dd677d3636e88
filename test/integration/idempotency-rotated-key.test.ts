import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { armFault, disarmFaults } from "../../src/domain/faults";
import { expectBooksBalance } from "../books";
import { call, customerKeyed, expectOk, type Tenant, tenantWithCatalog, unique, usageOf } from "../helpers";

/**
 * An Idempotency-Key is its partner's (or account's, service's, vendor's), not the credential's
 * that sent it: a partner that rotates its key while a request is being retried sends the retry
 * with the new key, and must not buy twice.
 */

afterEach(() => disarmFaults());

const newPartnerKey = async (t: Tenant) =>
  (
    await expectOk(
      call("POST", `/v1/partners/${t.partnerId}/api-keys`, { token: t.operator, body: { label: "rotated" } }),
      201,
    )
  ).token as string;

const revoke = async (t: Tenant, token: string) =>
  expectOk(call("DELETE", `/v1/credentials/${token.split(".")[1]}`, { token: t.operator }));

const purchase = (t: Tenant, token: string, key: string, amount = 3) =>
  call("POST", "/v1/subscriptions/", {
    token,
    body: { objects: [{ customer: t.customers[0], resource: "cpu", amount, period: "1 month" }] },
    headers: { "idempotency-key": key },
  });

const bought = async (t: Tenant) =>
  (await expectOk(call("GET", "/v1/subscriptions/?status=all", { token: t.partnerKey }))).objects;

describe("an Idempotency-Key sent again with the partner's new key", () => {
  it("replays the answer to the old key, and another request with it answers 422", async () => {
    const t = await tenantWithCatalog(1);
    const key = unique("rotated");
    const first = await purchase(t, t.partnerKey, key);
    expect(first.status, first.text).toBe(201);
    const rotated = await newPartnerKey(t);
    await revoke(t, t.partnerKey);
    const retry = await purchase(t, rotated, key);
    expect(retry.status, retry.text).toBe(201);
    expect(retry.headers.get("idempotent-replayed")).toBe("true");
    expect(retry.body.objects[0].id).toBe(first.body.objects[0].id);
    expect((await purchase(t, rotated, key, 4)).status).toBe(422);
    const live = { ...t, partnerKey: rotated };
    expect(await bought(live)).toHaveLength(1);
    expect(await usageOf(live, 0, "cpu")).toMatchObject({ usage: 3, pending: 0 });
    await expectBooksBalance(live);
  });

  it("resumes the work of a first attempt that died under the old key, buying once", async () => {
    const t = await tenantWithCatalog(1);
    const key = unique("rotated");
    armFault("purchase.created");
    expect((await purchase(t, t.partnerKey, key)).status).toBe(500);
    const rotated = await newPartnerKey(t);
    await revoke(t, t.partnerKey);
    const retry = await purchase(t, rotated, key);
    expect(retry.status, retry.text).toBe(201);
    expect(retry.headers.get("idempotent-replayed")).toBe("true");
    const live = { ...t, partnerKey: rotated };
    expect((await bought(live)).map((s: { id: string }) => s.id)).toEqual([retry.body.objects[0].id]);
    expect(await usageOf(live, 0, "cpu")).toMatchObject({ usage: 3, pending: 0 });
    await expectBooksBalance(live);
  });

  it("is another owner's under a customer's key or another partner's: the same key runs there", async () => {
    const t = await customerKeyed();
    const other = await tenantWithCatalog(1);
    const key = unique("shared");
    expect((await purchase(t, t.partnerKey, key)).status).toBe(201);
    const byAccount = await call("POST", "/v1/subscriptions/", {
      token: t.customerKey,
      body: { objects: [{ resource: "cpu", amount: 1, period: "1 month" }] },
      headers: { "idempotency-key": key },
    });
    expect(byAccount.status, byAccount.text).toBe(201);
    expect(byAccount.headers.get("idempotent-replayed")).toBeNull();
    const byOther = await purchase(other, other.partnerKey, key);
    expect(byOther.status, byOther.text).toBe(201);
    expect(byOther.headers.get("idempotent-replayed")).toBeNull();
    expect(await bought(t)).toHaveLength(2);
    expect(await bought(other)).toHaveLength(1);
  });
});

describe("migration 0022 (keys moved from their credential to its owner)", () => {
  it("moves each kept key to its credential's owner, the latest kept where two of one owner collide", async () => {
    const t = await tenantWithCatalog(1);
    const second = await newPartnerKey(t);
    const [a, b] = [t.partnerKey, second].map((token) => token.split(".")[1]) as [string, string];
    // The table as the migration finds it.
    await env.DB.batch([
      env.DB.prepare("DROP TABLE idempotency_keys"),
      env.DB.prepare(
        `CREATE TABLE idempotency_keys (credential_id text NOT NULL, key text NOT NULL, fingerprint text NOT NULL,
         status integer, headers text, body text, intent text, locked_until text NOT NULL, expires_at text NOT NULL,
         PRIMARY KEY(credential_id, key))`,
      ),
    ]);
    const row = (credential: string, key: string, fingerprint: string, expiresAt: string) =>
      env.DB.prepare(
        "INSERT INTO idempotency_keys (credential_id, key, fingerprint, locked_until, expires_at) VALUES (?, ?, ?, ?, ?)",
      ).bind(credential, key, fingerprint, expiresAt, expiresAt);
    await env.DB.batch([
      row(a, "only", "f-only", "2030-01-01T00:00:00.000Z"),
      row(a, "both", "f-older", "2030-01-01T00:00:00.000Z"),
      row(b, "both", "f-later", "2030-01-02T00:00:00.000Z"),
      row("gone", "orphan", "f-orphan", "2030-01-01T00:00:00.000Z"),
    ]);
    const migration = env.TEST_MIGRATIONS.find((m) => m.name.startsWith("0022_"));
    expect(migration).toBeDefined();
    for (const q of migration?.queries ?? []) await env.DB.prepare(q).run();
    const { results } = await env.DB.prepare(
      "SELECT owner, key, fingerprint FROM idempotency_keys ORDER BY key",
    ).all();
    const owner = `partner:${t.partnerId}`;
    expect(results).toEqual([
      { owner, key: "both", fingerprint: "f-later" },
      { owner, key: "only", fingerprint: "f-only" },
      { owner: "gone", key: "orphan", fingerprint: "f-orphan" },
    ]);
  });
});
