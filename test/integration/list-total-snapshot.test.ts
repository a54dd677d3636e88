import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { call, expectOk, tenant, unique } from "../helpers";

/**
 * A list's `meta.total_count` counts the rows the page was read from. Lists of customers, orders,
 * operations and deliveries read their page and their count in one D1 batch (one transaction);
 * as two statements, a write landing between them gave a complete page beside a count it did not
 * show. Here another customer is created just before the count statement runs, as a concurrent
 * request would.
 */

type Statement = D1PreparedStatement & { raw: D1PreparedStatement["raw"] };

/** A D1 whose count statements on `customers` first insert a customer of `partnerId`. */
function writeBeforeCount<T extends D1Database | D1DatabaseSession>(db: T, partnerId: string): T {
  return new Proxy(db, {
    get(target, key) {
      if (key === "withSession")
        return (start?: string) => writeBeforeCount((target as D1Database).withSession(start), partnerId);
      if (key === "prepare")
        return (query: string) => {
          const statement = target.prepare(query);
          if (!/count\(\*\)/i.test(query) || !/"customers"/.test(query)) return statement;
          const bind = statement.bind.bind(statement);
          statement.bind = (...values: unknown[]) => {
            const bound = bind(...values) as Statement;
            const raw = bound.raw.bind(bound);
            bound.raw = (async (options?: { columnNames?: boolean }) => {
              await target
                .prepare("INSERT INTO customers (id, partner_id, name) VALUES (?, ?, ?)")
                .bind(crypto.randomUUID(), partnerId, unique("late"))
                .run();
              return raw(options as { columnNames: true });
            }) as Statement["raw"];
            return bound;
          };
          return statement;
        };
      const value = Reflect.get(target, key);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

describe("a list's total_count", () => {
  it("counts the snapshot its page was read from, whatever is written meanwhile", async () => {
    const t = await tenant({ customers: 3 });
    const racing: Env = { ...env, DB: writeBeforeCount(env.DB, t.partnerId) };
    const page = await expectOk(call("GET", "/v1/customers/?limit=50", { token: t.partnerKey, env: racing }));
    expect(page.meta.next_cursor).toBeNull();
    expect(page.meta.total_count).toBe(page.objects.length);
  });
});
