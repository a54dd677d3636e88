import { describe, expect, it } from "vitest";
import { call, expectOk, tenant, unique } from "../helpers";

/**
 * A request body is JSON, and JSON is UTF-8 (RFC 8259 §8.1): bytes that are not UTF-8 answer 400
 * in the family's format and write nothing. Decoded leniently, each bad byte would become U+FFFD
 * and be stored so: a customer named "\xff\xfeBob" would read back as "��Bob".
 */

const utf8 = (text: string) => new TextEncoder().encode(text);
/** `{"name": "<0xFF 0xFE>Bob"}`: JSON in its framing, its string's first two bytes not UTF-8. */
const latin1Name = () => Uint8Array.from([...utf8('{"name": "'), 0xff, 0xfe, ...utf8('Bob"}')]);

describe("a request body that is not UTF-8", () => {
  it("answers 400 under /v1 and changes nothing", async () => {
    const t = await tenant({ customers: 1 });
    const id = t.customers[0] as string;
    const before = await expectOk(call("GET", `/v1/customers/${id}`, { token: t.partnerKey }));
    const patched = await call("PATCH", `/v1/customers/${id}`, { token: t.partnerKey, raw: latin1Name() });
    expect(patched.status, patched.text).toBe(400);
    expect(patched.headers.get("content-type")).toBe("application/problem+json");
    expect(patched.body).toMatchObject({
      type: "https://stratus.dev/problems/bad-request",
      errors: [{ point: "" }],
    });
    expect(await expectOk(call("GET", `/v1/customers/${id}`, { token: t.partnerKey }))).toEqual(before);

    const created = await call("POST", "/v1/customers", { token: t.partnerKey, raw: latin1Name() });
    expect(created.status, created.text).toBe(400);
    const list = await expectOk(call("GET", "/v1/customers", { token: t.partnerKey }));
    expect(list.objects.map((c: { id: string }) => c.id)).toEqual([id]);
  });

  it("answers a badRequest cloudFault under /account/v1.0", async () => {
    const t = await tenant({ customers: 1 });
    const raw = Uint8Array.from([...utf8('{"name": "'), 0xc3, ...utf8('", "provisions": []}')]);
    const r = await call("POST", "/account/v1.0/commissions", { token: t.serviceToken, raw });
    expect(r.status, r.text).toBe(400);
    expect(r.body).toEqual({ badRequest: { message: expect.any(String), code: 400 } });
    expect(await expectOk(call("GET", "/account/v1.0/commissions", { token: t.serviceToken }))).toEqual([]);
  });

  it("is refused before the Idempotency-Key is taken: the same request, fixed, then runs", async () => {
    const t = await tenant({ customers: 0 });
    const key = unique("key");
    const headers = { "idempotency-key": key };
    const wrong = await call("POST", "/v1/customers", { token: t.partnerKey, raw: latin1Name(), headers });
    expect(wrong.status, wrong.text).toBe(400);
    const right = await call("POST", "/v1/customers", {
      token: t.partnerKey,
      body: { name: "Bob" },
      headers,
    });
    expect(right.status, right.text).toBe(201);
    expect(right.headers.get("idempotent-replayed")).toBeNull();
  });
});
