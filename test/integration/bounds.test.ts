import { env } from "cloudflare:workers";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { D1_MAX_PARAMETERS, parameterChunks } from "../../src/db/client";
import { partnerCustomerIds } from "../../src/db/customers";
import { findOrders, insertOrders, setOrdersState } from "../../src/db/orders";
import { chainMembers, customerHasProducts } from "../../src/db/subscriptions";
import { MAX_ALIASES } from "../../src/domain/catalog";
import { MAX_LISTED_SERIALS, MAX_RESOLVE_SERIALS } from "../../src/domain/commissions";
import { uuidv7 } from "../../src/domain/ids";
import { MAX_OBJECTS } from "../../src/domain/purchase";
import { MAX_PROVISIONS } from "../../src/domain/quota";
import { MAX_FILTER_VALUES } from "../../src/domain/subscriptions";
import { MAX_PAGE_LIMIT } from "../../src/schemas/pagination";
import { call, deref, expectOk, PRODUCTS, type Reply, tenant, tenantWithCatalog, unique } from "../helpers";

/**
 * Bounded inputs: every list a request carries (a filter, a batch body) answers 200 up to its
 * bound and a 400 naming the bound past it, in the family's format, never a 500; and no D1
 * statement binds more than 100 parameters, however long a list reaches the database.
 */

const setup = () => tenantWithCatalog(2);

/** A /v1 answer over a bound: problem+json whose `errors` name `point` with the bound's message. */
function expectOverBound(r: Reply, point: string, message: string) {
  expect(r.status, r.text).toBe(400);
  expect(r.headers.get("content-type")).toBe("application/problem+json");
  expect(r.body.errors, r.text).toContainEqual({ point, message });
  expect(r.body.detail).toContain(message);
}

/** A /account/v1.0 answer over a bound: a cloudFault badRequest naming the bound. */
function expectBadRequest(r: Reply, message: string) {
  expect(r.status, r.text).toBe(400);
  expect(r.body).toEqual({ badRequest: { message: expect.stringContaining(message), code: 400 } });
}

/** Every length from 0 to a little past `bound`. */
const lengthsThrough = (bound: number, past = 5) => Array.from({ length: bound + past + 1 }, (_, n) => n);

/** Lengths of a large bound: the edges, and some anywhere from 0 to past it. */
const aroundBound = (bound: number) =>
  fc.oneof(fc.constantFrom(0, 1, bound - 1, bound, bound + 1), fc.integer({ min: 0, max: bound + 50 }));

describe("resource filter of the list routes", async () => {
  const t = await setup();
  const c = t.customers[0];
  await expectOk(
    call("POST", "/v1/subscriptions/", {
      token: t.partnerKey,
      body: {
        objects: [
          { customer: c, resource: "cpu", amount: 1, period: "1 day" },
          { customer: c, resource: "hdd", amount: 1, period: "1 day" },
        ],
      },
    }),
    201,
  );

  /** A filter value: a product id or alias (any case, padded), or a name no product has. */
  const value = fc.oneof(
    fc.constantFrom(...PRODUCTS.map((p) => p.id), "hdd", "CPU", " mem ", "Dssd"),
    fc.stringMatching(/^[a-z0-9][a-z0-9_.-]{0,24}$/).map((s) => `nope-${s}`),
  );
  const canonical = (v: string) => {
    const name = v.trim().toLowerCase();
    return name === "hdd" ? "dssd" : name;
  };

  for (const path of ["/v1/subscriptions/", "/v1/groupedsubscriptions/"]) {
    it(`${path}: ${MAX_FILTER_VALUES} values or fewer answer 200, more a 400 naming the bound`, async () => {
      for (const length of lengthsThrough(MAX_FILTER_VALUES, 10)) {
        await fc.assert(
          fc.asyncProperty(fc.array(value, { minLength: length, maxLength: length }), async (values) => {
            const query = values.map(encodeURIComponent).join(",");
            const r = await call("GET", `${path}?resource=${query}`, { token: t.partnerKey });
            expect(r.status, r.text).not.toBeGreaterThanOrEqual(500);
            if (length > MAX_FILTER_VALUES) {
              expectOverBound(r, "/resource", `at most ${MAX_FILTER_VALUES} values`);
              return;
            }
            expect(r.status, r.text).toBe(200);
            const named = new Set(values.map(canonical));
            for (const s of r.body.objects as { product: string }[]) {
              // No filter (no values) lists everything.
              if (length > 0) expect(named).toContain(s.product);
            }
            if (named.has("cpu"))
              expect(r.body.objects.map((s: { product: string }) => s.product)).toContain("cpu");
          }),
          { numRuns: 2 },
        );
      }
    });
  }

  it("repeats count toward the bound, and a repeated value filters once", async () => {
    const repeated = (n: number) => Array.from({ length: n }, () => "cpu").join(",");
    const over = await call("GET", `/v1/subscriptions/?resource=${repeated(99)}`, { token: t.partnerKey });
    expectOverBound(over, "/resource", `at most ${MAX_FILTER_VALUES} values`);
    const at = await expectOk(
      call("GET", `/v1/subscriptions/?resource=${repeated(MAX_FILTER_VALUES)}`, { token: t.partnerKey }),
    );
    expect(at.objects.map((s: { product: string }) => s.product)).toEqual(["cpu"]);
    // Empty values are not values: they neither count nor filter.
    const empties = await expectOk(
      call("GET", `/v1/subscriptions/?resource=${",".repeat(200)}cpu`, { token: t.partnerKey }),
    );
    expect(empties.objects.map((s: { product: string }) => s.product)).toEqual(["cpu"]);
  });

  it(`a page holds at most ${MAX_PAGE_LIMIT}`, async () => {
    for (const path of ["/v1/subscriptions/", "/v1/groupedsubscriptions/", "/v1/customers", "/v1/orders"]) {
      await expectOk(call("GET", `${path}?limit=${MAX_PAGE_LIMIT}`, { token: t.partnerKey }));
      const over = await call("GET", `${path}?limit=${MAX_PAGE_LIMIT + 1}`, { token: t.partnerKey });
      expectOverBound(over, "/limit", `at most ${MAX_PAGE_LIMIT}`);
    }
  });

  it("the OpenAPI document states the bound", async () => {
    const doc = await expectOk(call("GET", "/openapi.json"));
    for (const path of ["/v1/subscriptions", "/v1/groupedsubscriptions"]) {
      const resource = doc.paths[path].get.parameters.find((p: { name: string }) => p.name === "resource");
      expect(resource.description).toContain(`at most ${MAX_FILTER_VALUES} values`);
    }
    const body = (path: string, method: string) =>
      deref(doc, doc.paths[path][method].requestBody.content["application/json"].schema);
    expect(body("/v1/products/{id}", "put").properties.aliases.maxItems).toBe(MAX_ALIASES);
    expect(body("/v1/subscriptions", "post").properties.objects.maxItems).toBe(MAX_OBJECTS);
    expect(body("/account/v1.0/commissions", "post").properties.provisions.maxItems).toBe(MAX_PROVISIONS);
    const many = body("/account/v1.0/commissions/action", "post");
    expect(many.properties.accept.maxItems).toBe(MAX_LISTED_SERIALS);
    expect(many.properties.reject.maxItems).toBe(MAX_LISTED_SERIALS);
  });
});

describe("product aliases", async () => {
  const t = await setup();
  const id = unique("bx");
  const alias = fc.stringMatching(/^[a-z0-9]{1,12}$/).map((s) => `${id}-${s}`);

  it(`${MAX_ALIASES} aliases or fewer answer 200, more a 400 naming the bound`, async () => {
    for (const length of lengthsThrough(MAX_ALIASES)) {
      await fc.assert(
        fc.asyncProperty(fc.uniqueArray(alias, { minLength: length, maxLength: length }), async (aliases) => {
          const r = await call("PUT", `/v1/products/${id}`, {
            token: t.operator,
            body: {
              name: id,
              kind: "timed",
              unit: "GB",
              unit_price: "0.01",
              currency: "EUR",
              quota_resource: "stratus.cpu",
              aliases,
            },
          });
          expect(r.status, r.text).not.toBeGreaterThanOrEqual(500);
          if (length > MAX_ALIASES) expectOverBound(r, "/aliases", `at most ${MAX_ALIASES} aliases`);
          else expect(r.status, r.text).toBe(200);
        }),
        { numRuns: 2 },
      );
    }
  });
});

describe("batch bodies of the quota API", async () => {
  const t = await tenant({ customers: 2, limit: 10 });

  it(`resolving many: ${MAX_RESOLVE_SERIALS} serials are resolved, those after answered as not resolved, each in \`failed\``, async () => {
    // Serials no ledger was ever given: each fails on its own, the request answers 200.
    const serial = fc.integer({ min: 2 ** 40, max: 2 ** 40 + 5000 });
    await fc.assert(
      fc.asyncProperty(
        aroundBound(MAX_RESOLVE_SERIALS),
        fc.constantFrom("accept", "reject"),
        fc.infiniteStream(serial),
        async (length, list, serials) => {
          const listed = [...serials.take(length)];
          const r = await call("POST", "/account/v1.0/commissions/action", {
            token: t.serviceToken,
            body: { [list]: listed },
          });
          expect(r.status, r.text).toBe(200);
          expect(r.body.accepted).toEqual([]);
          expect(r.body.rejected).toEqual([]);
          const distinct = [...new Set(listed)];
          expect(r.body.failed.map(([s]: [number]) => s)).toEqual(distinct);
          const faults = r.body.failed.map(([, f]: [number, object]) => Object.keys(f)[0]);
          expect(faults).toEqual(
            distinct.map((_, i) => (i < MAX_RESOLVE_SERIALS ? "itemNotFound" : "serviceUnavailable")),
          );
        },
      ),
      { numRuns: 12 },
    );
  });

  it(`resolving many: more than ${MAX_LISTED_SERIALS} serials a list answer a badRequest naming the bound`, async () => {
    const listed = Array.from({ length: MAX_LISTED_SERIALS + 1 }, (_, i) => i + 1);
    const r = await call("POST", "/account/v1.0/commissions/action", {
      token: t.serviceToken,
      body: { accept: listed },
    });
    expectBadRequest(r, `at most ${MAX_LISTED_SERIALS} serials`);
  });

  it(`issuing: up to ${MAX_PROVISIONS} provisions answer 201, more a badRequest naming the bound`, async () => {
    const provision = fc.record({
      holder: fc.constantFrom(...t.customers),
      source: fc.constant("system"),
      resource: fc.constantFrom(...t.resources),
      quantity: fc.constant(0),
    });
    await fc.assert(
      fc.asyncProperty(aroundBound(MAX_PROVISIONS), fc.infiniteStream(provision), async (length, stream) => {
        const r = await call("POST", "/account/v1.0/commissions", {
          token: t.serviceToken,
          body: { auto_accept: true, provisions: [...stream.take(length)] },
        });
        expect(r.status, r.text).not.toBeGreaterThanOrEqual(500);
        if (length > MAX_PROVISIONS) expectBadRequest(r, `at most ${MAX_PROVISIONS} provisions`);
        else expect(r.status, r.text).toBe(201);
      }),
      { numRuns: 10 },
    );
  });
});

describe("D1 statements with lists of any length", async () => {
  const t = await setup();

  it("chunks never exceed the parameters left, and hold every distinct value once", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 400 }), { maxLength: 1000 }),
        fc.integer({ min: 0, max: 20 }),
        (values, others) => {
          const chunks = parameterChunks(values, others);
          for (const chunk of chunks) {
            expect(chunk.length).toBeGreaterThan(0);
            expect(chunk.length + others).toBeLessThanOrEqual(D1_MAX_PARAMETERS);
          }
          const flat = chunks.flat();
          expect(flat).toHaveLength(new Set(flat).size);
          expect(new Set(flat)).toEqual(new Set(values));
        },
      ),
    );
  });

  it("finds a partner's customers among hundreds of ids", async () => {
    const strangers = Array.from({ length: 250 }, () => uuidv7());
    const ids = [...strangers.slice(0, 120), t.customers[0]!, ...strangers.slice(120), t.customers[1]!];
    expect(await partnerCustomerIds(env, t.partnerId, [...ids, ...ids])).toEqual(new Set(t.customers));
  });

  it("moves and reads hundreds of orders", async () => {
    const ids = Array.from({ length: 250 }, () => uuidv7());
    await insertOrders(
      env,
      ids.map((id) => ({
        id,
        partnerId: t.partnerId,
        customerId: t.customers[0]!,
        lines: [],
        totalMinor: 0,
        currency: "EUR",
        createdAt: new Date().toISOString(),
        state: "pending" as const,
      })),
    );
    await setOrdersState(env, ids, "completed");
    const found = await findOrders(env, [...ids, ...ids]);
    expect(found.map((o) => o.id).sort()).toEqual([...ids].sort());
    expect(found.every((o) => o.state === "completed")).toBe(true);
  });

  it("reads chains and products of hundreds of names", async () => {
    const bought = await expectOk(
      call("POST", "/v1/subscriptions/", {
        token: t.partnerKey,
        body: { objects: [{ customer: t.customers[0], resource: "mem", amount: 1, period: "1 day" }] },
      }),
      201,
    );
    const sub = bought.objects[0];
    const roots = [...Array.from({ length: 250 }, () => uuidv7()), sub.id];
    expect([...(await chainMembers(env, roots)).keys()]).toEqual([sub.id]);
    const names = Array.from({ length: 250 }, (_, i) => `nope-${i}`);
    expect(await customerHasProducts(env, t.customers[0]!, names)).toBe(false);
    expect(await customerHasProducts(env, t.customers[0]!, [...names, "mem"])).toBe(true);
  });
});

describe("the length of a period", async () => {
  const t = await setup();
  const quote = (period: string) =>
    call("POST", "/v1/subscriptioncalculator/", {
      token: t.partnerKey,
      body: { objects: [{ customer: t.customers[0], resource: "cpu", amount: 1, period }] },
    });
  const bound = "at most 100 years, and at most 100000 of any one unit";

  it("100 years, or 100000 of a unit, answer 200; past either a 400 naming the bound", async () => {
    for (const period of ["100 years", "1200 months", "5217 weeks", "36524 days", "100000 hours"]) {
      await expectOk(quote(period));
    }
    for (const period of ["101 years", "1201 months", "5218 weeks", "100 years 1 day", "100001 hours"]) {
      const message = `The period is too long: a term lasts ${bound}.`;
      expectOverBound(await quote(period), "/objects/0/period", message);
    }
    const bought = await expectOk(
      call("POST", "/v1/subscriptions/", {
        token: t.partnerKey,
        body: { objects: [{ customer: t.customers[0], resource: "cpu", amount: 1, period: "1 week" }] },
      }),
      201,
    );
    const extended = await call("POST", `/v1/subscriptions/${bought.objects[0].id}/action/?do=extend`, {
      token: t.partnerKey,
      body: { period: "101 years" },
    });
    expectOverBound(extended, "/period", `The period is too long: a term lasts ${bound}.`);
  });

  it("the OpenAPI document states it", async () => {
    const doc = await expectOk(call("GET", "/openapi.json"));
    const purchase = deref(
      doc,
      doc.paths["/v1/subscriptions"].post.requestBody.content["application/json"].schema,
    );
    expect(JSON.stringify(deref(doc, purchase.properties.objects.items).properties.period)).toContain(bound);
  });
});

describe("the request body bound", async () => {
  const t = await tenant({ customers: 0 });
  /** A body streamed without Content-Length (chunked), as a client that does not know its size sends it. */
  async function streamed(text: string) {
    const { exports } = await import("cloudflare:workers");
    const bytes = new TextEncoder().encode(text);
    const body = new ReadableStream({
      start(controller) {
        for (let at = 0; at < bytes.byteLength; at += 64 * 1024)
          controller.enqueue(bytes.slice(at, at + 64 * 1024));
        controller.close();
      },
    });
    return exports.default.fetch("http://stratus.test/v1/customers", {
      method: "POST",
      headers: {
        "x-api-key": t.partnerKey,
        "content-type": "application/json",
        "cf-connecting-ip": unique("ip"),
      },
      body,
    });
  }

  it("counts bytes, not characters: 1.2 MB of UTF-8 in 600,000 characters answers 413", async () => {
    const text = JSON.stringify({ name: "é".repeat(600_000) });
    expect(text.length).toBeLessThan(1 << 20);
    const r = await streamed(text);
    expect(r.status, (await r.text()).slice(0, 200)).toBe(413);
  });

  it("reads a streamed body within it as JSON", async () => {
    const r = await streamed(JSON.stringify({ name: "é".repeat(150) }));
    expect(r.status, (await r.text()).slice(0, 200)).toBe(201);
  });
});
