import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { syndicationOf } from "../../src/db/webhooks";
import {
  call,
  expectOk,
  firstStatementHeld,
  gate,
  syndicatedProduct,
  syndicatedProductBody,
  tenant,
} from "../helpers";

/**
 * D1 as a request that dies after its first write to `products` sees it: that write lands, any
 * later statement writing `products` fails (as D1 does when the Worker is gone).
 */
function diesAfterFirstProductWrite(db: D1Database): D1Database {
  let written = false;
  const writesProducts = (sql: string) => /^\s*(insert into|update)\s+"products"/i.test(sql);
  const wrap = <T extends D1Database | D1DatabaseSession>(target: T): T =>
    new Proxy(target, {
      get(t, key) {
        if (key === "prepare")
          return (sql: string) => {
            if (writesProducts(sql)) {
              if (written) throw new Error("the Worker died");
              written = true;
            }
            return t.prepare(sql);
          };
        if (key === "withSession") return (start?: string) => wrap((t as D1Database).withSession(start));
        const value = Reflect.get(t, key);
        return typeof value === "function" ? value.bind(t) : value;
      },
    });
  return wrap(db);
}

/**
 * A product's vendor changes (before it is sold) together with its signing secret and endpoint:
 * a request that dies between the two must not leave the new vendor's product signed with the old
 * vendor's secret (which that vendor could then sign events with) and pushing to its endpoint,
 * with no secret ever shown for the new vendor.
 */
describe("a product's new vendor, the request dying half-way", () => {
  it("never keeps the old vendor's secret or endpoint: the new vendor's secret is shown once", async () => {
    const t = await tenant({ customers: 1 });
    const { product, secret: oldSecret } = await syndicatedProduct(t, "old-vendor.example");
    const other = await expectOk(
      call("POST", "/v1/vendors", { token: t.operator, body: { name: "Successor" } }),
      201,
    );
    const body = syndicatedProductBody(product, other.id, "https://new-vendor.example/hooks");
    const dying = await call("PUT", `/v1/products/${product}`, {
      token: t.operator,
      body,
      env: Object.create(env, { DB: { value: diesAfterFirstProductWrite(env.DB) } }) as Env,
    });
    // The operator sends it again (a 5xx, or whatever the first answer was).
    const again = await expectOk(call("PUT", `/v1/products/${product}`, { token: t.operator, body }));
    const shown = [dying.status === 200 ? dying.body.signing_secret : undefined, again.signing_secret].filter(
      (s): s is string => typeof s === "string",
    );
    const row = await syndicationOf(env, product);
    expect(row?.vendorId).toBe(other.id);
    expect(row?.endpoint).toBe("https://new-vendor.example/hooks");
    // Signed with a secret of the new vendor's own, shown to the operator once, never the old one.
    expect(row?.signingSecret).not.toBe(oldSecret);
    expect(row?.previousSecret ?? null).toBeNull();
    expect(shown).toEqual([row?.signingSecret]);
  });
});

describe("a rotation of the signing secret that lands after the product changed vendor", () => {
  it("keeps as the previous secret the new vendor's, never the old vendor's", async () => {
    const t = await tenant({ customers: 1 });
    const { product, secret: oldSecret } = await syndicatedProduct(t, "old-vendor.example");
    const held = gate();
    // The rotation has read the product (the old vendor's secret current) and waits to write.
    const rotation = call("POST", `/v1/products/${product}/signing-secret`, {
      token: t.operator,
      env: Object.create(env, {
        DB: { value: firstStatementHeld(env.DB, /^\s*update\s+"products"/i, held) },
      }) as Env,
    });
    await held.reached;
    const other = await expectOk(
      call("POST", "/v1/vendors", { token: t.operator, body: { name: "Successor" } }),
      201,
    );
    const moved = await expectOk(
      call("PUT", `/v1/products/${product}`, {
        token: t.operator,
        body: syndicatedProductBody(product, other.id, "https://new-vendor.example/hooks"),
      }),
    );
    held.release();
    const rotated = await expectOk(rotation);
    const row = await syndicationOf(env, product);
    expect(row?.signingSecret).toBe(rotated.signing_secret);
    // Before, the rotation kept the secret it had read: the old vendor's signed the new vendor's
    // events for a day.
    expect(row?.previousSecret).not.toBe(oldSecret);
    expect(row?.previousSecret).toBe(moved.signing_secret);
  });
});
