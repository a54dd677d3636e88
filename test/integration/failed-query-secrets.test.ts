import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, type MockInstance, vi } from "vitest";
import { call, operatorToken, tenant, unique } from "../helpers";

/**
 * A statement D1 fails at run time (an outage, a lost connection) reaches the log through
 * drizzle's DrizzleQueryError, whose message lists the statement's bound values: a new signing
 * secret, a credential's hash. The line keeps the statement and D1's reason, never the values.
 */

let errors: MockInstance<typeof console.error>;

beforeEach(() => {
  errors = vi.spyOn(console, "error");
});
afterEach(() => vi.restoreAllMocks());

const logged = () => errors.mock.calls.flat().join("\n");

/** A statement of `db` that fails when run, as D1 does in an outage, if its SQL matches `failing`. */
function failingAtRun<T extends D1Database | D1DatabaseSession>(db: T, failing: RegExp): T {
  return new Proxy(db, {
    get(target, key) {
      if (key === "prepare")
        return (query: string) => {
          const statement = target.prepare(query);
          if (!failing.test(query)) return statement;
          const fail = () => Promise.reject(new Error("D1_ERROR: Network connection lost."));
          return new Proxy(statement, {
            get: (s, k) =>
              k === "bind" ? () => ({ run: fail, all: fail, raw: fail, first: fail }) : Reflect.get(s, k),
          });
        };
      if (key === "withSession")
        return (start?: string) => failingAtRun((target as D1Database).withSession(start), failing);
      const value = Reflect.get(target, key);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

async function syndicatedProduct(operator: string) {
  const vendor = await call("POST", "/v1/vendors", { token: operator, body: { name: unique("vendor") } });
  const id = unique("synd");
  const resource = await call("PUT", `/v1/resources/stratus.${id}`, {
    token: operator,
    body: { unit: "seat", description: id, service: "stratus" },
  });
  expect(resource.status, resource.text).toBeLessThan(300);
  const put = await call("PUT", `/v1/products/${id}`, {
    token: operator,
    body: {
      name: id,
      kind: "license",
      unit: "seat",
      unit_price: "0.05",
      currency: "EUR",
      quota_resource: `stratus.${id}`,
      delivery: "syndicated",
      vendor: vendor.body.id,
      endpoint: "https://hooks.example.com/stratus",
    },
  });
  expect(put.status, put.text).toBeLessThan(300);
  return id;
}

describe("a statement that fails when run", () => {
  it("logs no signing secret of a rotation it was writing", async () => {
    const operator = await operatorToken();
    const product = await syndicatedProduct(operator);
    const down = { ...env, DB: failingAtRun(env.DB, /^update "products" set "signing_secret"/) };
    const r = await call("POST", `/v1/products/${product}/signing-secret`, { token: operator, env: down });
    expect(r.status).toBe(500);
    expect(logged()).not.toMatch(/whsec_/);
    // What failed, and why, stay: the statement, and D1's reason (drizzle's `cause`).
    expect(logged()).toContain("Failed query: update");
    expect(logged()).toContain("Network connection lost");
  });

  it("logs no credential hash of a key it was issuing", async () => {
    const t = await tenant({ customers: 1 });
    const down = { ...env, DB: failingAtRun(env.DB, /^insert into "credentials"/) };
    const r = await call("POST", `/v1/customers/${t.customers[0]}/tokens`, {
      token: t.partnerKey,
      body: {},
      env: down,
    });
    expect(r.status).toBe(500);
    // The bound values: the credential's id, role, partner, customer and its secret's hash (hex).
    expect(logged()).not.toMatch(/[0-9a-f]{64}/);
    expect(logged()).not.toContain("params:");
    expect(logged()).toContain("Network connection lost");
  });
});
