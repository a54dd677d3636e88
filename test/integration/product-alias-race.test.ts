import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { listProducts } from "../../src/db/products";
import { call, gate, tenant, unique } from "../helpers";

/** D1 whose first write of `products` waits at `held` before it runs; everything else goes through. */
function firstProductWriteHeld(db: D1Database, held: ReturnType<typeof gate>): D1Database {
  let holding = true;
  const statement = (st: D1PreparedStatement): D1PreparedStatement =>
    new Proxy(st, {
      get(t, key) {
        if (key === "bind") return (...values: unknown[]) => statement(t.bind(...values));
        const value = Reflect.get(t, key);
        if (typeof value !== "function") return value;
        if (!["all", "run", "first", "raw"].includes(key as string)) return value.bind(t);
        return async (...args: unknown[]) => {
          await held.pass();
          return value.apply(t, args);
        };
      },
    });
  const wrap = <T extends D1Database | D1DatabaseSession>(target: T): T =>
    new Proxy(target, {
      get(t, key) {
        if (key === "prepare")
          return (sql: string) => {
            const st = t.prepare(sql);
            if (!holding || !/^\s*(insert into|update)\s+"products"/i.test(sql)) return st;
            holding = false;
            return statement(st);
          };
        if (key === "withSession") return (start?: string) => wrap((t as D1Database).withSession(start));
        const value = Reflect.get(t, key);
        return typeof value === "function" ? value.bind(t) : value;
      },
    });
  return wrap(db);
}

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
      env: Object.create(env, { DB: { value: firstProductWriteHeld(env.DB, held) } }) as Env,
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
