/**
 * D1 as production limits one invocation of the Worker or of an object (a request, an alarm): at
 * most `budget` queries, every statement of a batch counting as one
 * (https://developers.cloudflare.com/d1/platform/limits/, "Queries per Worker invocation": 1000
 * on Workers Paid). Past it each query fails, as D1 fails them there. `invocation()` starts a new
 * invocation's count; `largestBatch`, `mostChanged` and `refused` tell what the invocations so far spent.
 */
export function limitedD1(db: D1Database, budget = 1000) {
  const real = Symbol("the statement the proxy stands for");
  const state = { used: 0, largestBatch: 0, refused: 0, mostChanged: 0 };
  const spend = (n: number) => {
    state.used += n;
    if (state.used > budget) {
      state.refused += n;
      throw new Error("D1_ERROR: Too many API requests by single worker invocation.");
    }
  };
  const statement = (s: D1PreparedStatement): D1PreparedStatement =>
    new Proxy(s, {
      get(target, key) {
        if (key === real) return target;
        if (key === "bind") return (...values: unknown[]) => statement(target.bind(...values));
        if (key === "first" || key === "all" || key === "run" || key === "raw")
          return async (...args: unknown[]) => {
            spend(1);
            const result = await (target[key] as (...a: unknown[]) => unknown)(...args);
            const changes = (result as { meta?: { changes?: number } } | null)?.meta?.changes ?? 0;
            state.mostChanged = Math.max(state.mostChanged, changes);
            return result;
          };
        const value = Reflect.get(target, key);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  const unwrap = (s: D1PreparedStatement) =>
    ((s as unknown as Record<symbol, D1PreparedStatement>)[real] ?? s) as D1PreparedStatement;
  const wrap = <T extends D1Database | D1DatabaseSession>(target: T): T =>
    new Proxy(target, {
      get(t, key) {
        if (key === "prepare") return (query: string) => statement(t.prepare(query));
        if (key === "batch")
          return async (statements: D1PreparedStatement[]) => {
            state.largestBatch = Math.max(state.largestBatch, statements.length);
            spend(statements.length);
            return t.batch(statements.map(unwrap));
          };
        if (key === "withSession")
          return (start?: string) => wrap((t as D1Database).withSession(start as D1SessionConstraint));
        const value = Reflect.get(t, key);
        return typeof value === "function" ? value.bind(t) : value;
      },
    });
  return {
    db: wrap(db),
    /** A new invocation: its queries are counted from 0. */
    invocation() {
      state.used = 0;
    },
    get largestBatch() {
      return state.largestBatch;
    },
    /** The most rows one statement changed (D1 stops a query at 30 s: a bound on the rows one writes). */
    get mostChanged() {
      return state.mostChanged;
    },
    /** Queries the current invocation has made. */
    get used() {
      return state.used;
    },
    /** How many queries were refused so far, past an invocation's budget (a code that catches them hides them). */
    get refused() {
      return state.refused;
    },
  };
}
