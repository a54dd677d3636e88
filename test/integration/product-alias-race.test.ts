import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { listProducts } from "../../src/db/products";
import { call, firstStatementHeld, gate, tenant, unique } from "../helpers";

/**
 * Each name names one product (README: an alias that is another product's id or alias answers
 * 409). Two PUTs at once giving the same alias to two products must not both land.
 */
describe("two products given the same alias at once", () => {
  it("leaves the alias on one product only: the other answers 409", async () => {
    const t = await tenant({ customers: 0 });
    const resource = `stratus.${unique("race")}`;
    await call("PUT", `/v1/resources/${resource}`, { token: t.operator, body: { service: "stratus" } });
    const alias = unique("alias");
    const body = (name: string) => ({
      name,
      kind: "timed",
      unit: "GB",
      unit_price: "0.10",
      currency: "EUR",
      quota_resource: resource,
      aliases: [alias],
    });
    const [a, b] = [unique("pa"), unique("pb")];
    const held = gate();
    const first = call("PUT", `/v1/products/${a}`, {
      token: t.operator,
      body: body(a),
      env: Object.create(env, {
        DB: { value: firstStatementHeld(env.DB, /^\s*(insert into|update)\s+"products"/i, held) },
      }) as Env,
    });
    await held.reached;
    const second = await call("PUT", `/v1/products/${b}`, { token: t.operator, body: body(b) });
    held.release();
    const answers = [(await first).status, second.status].sort();
    const named = (await listProducts(env)).filter((p) => p.aliases.includes(alias)).map((p) => p.id);
    expect(named).toHaveLength(1);
    expect(answers).toEqual([200, 409]);
  });
});
