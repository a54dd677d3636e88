import type { Spending } from "../domain/budget";

/**
 * `env` with every D1 query, object call and queue send it makes counted in `spent` (D1 queries
 * are subrequests too): what an invocation that runs many steps (the cron) reads to keep each
 * step within its share of the invocation's limits (`allowance`, src/domain/budget.ts).
 */
export function metered(env: Env): { env: Env; spent: Spending } {
  const spent: Spending = { queries: 0, subrequests: 0 };
  const query = (n: number) => {
    spent.queries += n;
    spent.subrequests += n;
  };
  const call = () => {
    spent.subrequests += 1;
  };
  return {
    spent,
    env: {
      ...env,
      DB: meteredD1(env.DB, query),
      SUBSCRIPTION: meteredObjects(env.SUBSCRIPTION, call),
      QUOTA_LEDGER: meteredObjects(env.QUOTA_LEDGER, call),
      RENEWALS: meteredQueue(env.RENEWALS, call),
      OPERATIONS: meteredQueue(env.OPERATIONS, call),
      WEBHOOKS: meteredQueue(env.WEBHOOKS, call),
    },
  };
}

const REAL = Symbol("the statement a metered one stands for");

function meteredD1<T extends D1Database | D1DatabaseSession>(db: T, query: (n: number) => void): T {
  const statement = (s: D1PreparedStatement): D1PreparedStatement =>
    new Proxy(s, {
      get(target, key) {
        if (key === REAL) return target;
        if (key === "bind") return (...values: unknown[]) => statement(target.bind(...values));
        const value = Reflect.get(target, key);
        if (typeof value !== "function") return value;
        if (key === "first" || key === "all" || key === "run" || key === "raw")
          return (...args: unknown[]) => {
            query(1);
            return (value as (...a: unknown[]) => unknown).apply(target, args);
          };
        return value.bind(target);
      },
    });
  const real = (s: D1PreparedStatement) =>
    ((s as unknown as Record<symbol, D1PreparedStatement | undefined>)[REAL] ?? s) as D1PreparedStatement;
  return new Proxy(db, {
    get(target, key) {
      if (key === "prepare") return (sql: string) => statement(target.prepare(sql));
      if (key === "batch")
        return (statements: D1PreparedStatement[]) => {
          query(statements.length);
          return target.batch(statements.map(real));
        };
      if (key === "withSession")
        return (constraint?: D1SessionConstraint | D1SessionBookmark) =>
          meteredD1((target as D1Database).withSession(constraint), query);
      const value = Reflect.get(target, key);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/** A namespace whose stubs count each call made on them. */
function meteredObjects<N extends object>(namespace: N, call: () => void): N {
  const stub = (target: object) =>
    new Proxy(target, {
      get(t, key) {
        // Not a promise; its id and name are no calls.
        if (key === "then") return undefined;
        const value = Reflect.get(t, key);
        if (typeof key === "symbol" || key === "id" || key === "name" || typeof value !== "function")
          return value;
        return (...args: unknown[]) => {
          call();
          return (t as unknown as Record<string, (...a: unknown[]) => unknown>)[key]?.(...args);
        };
      },
    });
  return new Proxy(namespace, {
    get(target, key) {
      const value = Reflect.get(target, key);
      if (typeof value !== "function") return value;
      if (key === "get" || key === "getByName")
        return (...args: unknown[]) => stub((value as (...a: unknown[]) => object).apply(target, args));
      return value.bind(target);
    },
  });
}

function meteredQueue<Q extends object>(queue: Q, call: () => void): Q {
  return new Proxy(queue, {
    get(target, key) {
      const value = Reflect.get(target, key);
      if (typeof value !== "function") return value;
      if (key === "send" || key === "sendBatch")
        return (...args: unknown[]) => {
          call();
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      return value.bind(target);
    },
  });
}
