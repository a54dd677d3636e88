// The profiling twin of the stratus Worker for `npm run bench`: the same production bundle
// (imported as ./stratus.js) behind a wrapper that records every D1 statement and every Durable
// Object call a request makes, with its SQL and the time it took. It is never under load: the
// bench sends it single requests, one after another, to explain the numbers of the timed runs.
import stratus from "./stratus.js";

let trace = [];

function timed(entry, promise) {
  const started = performance.now();
  const done = () => {
    entry.ms = performance.now() - started;
  };
  return Promise.resolve(promise).then(
    (value) => {
      done();
      return value;
    },
    (error) => {
      done();
      throw error;
    },
  );
}

function statement(inner, sql, params) {
  return new Proxy(inner, {
    get(target, key) {
      if (key === "bind") return (...values) => statement(target.bind(...values), sql, values);
      if (key === "all" || key === "run" || key === "first" || key === "raw") {
        return (...args) => {
          const entry = { kind: "d1", sql, params, ms: 0 };
          trace.push(entry);
          return timed(entry, target[key](...args));
        };
      }
      const value = target[key];
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

function database(db) {
  return new Proxy(db, {
    get(target, key) {
      if (key === "prepare") return (sql) => statement(target.prepare(sql), sql, []);
      if (key === "batch") {
        return (statements) => {
          const entry = { kind: "d1", sql: `batch of ${statements.length}`, params: [], ms: 0 };
          trace.push(entry);
          return timed(entry, target.batch(statements));
        };
      }
      // A request's D1 work runs in a session (src/http/d1-session.ts): its statements too.
      if (key === "withSession") return (start) => database(target.withSession(start));
      const value = target[key];
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

function objectStub(stub, binding) {
  return new Proxy(stub, {
    get(target, key) {
      const value = target[key];
      if (typeof key !== "string" || key === "then" || typeof value !== "function") return value;
      return (...args) => {
        const entry = { kind: "do", sql: `${binding}.${key}`, params: [], ms: 0 };
        trace.push(entry);
        return timed(entry, Reflect.apply(value, target, args));
      };
    },
  });
}

function namespace(ns, binding) {
  return new Proxy(ns, {
    get(target, key) {
      if (key === "get") return (...args) => objectStub(target.get(...args), binding);
      const value = target[key];
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

function instrument(env) {
  return {
    ...env,
    DB: database(env.DB),
    QUOTA_LEDGER: namespace(env.QUOTA_LEDGER, "QuotaLedger"),
    SUBSCRIPTION: namespace(env.SUBSCRIPTION, "SubscriptionObject"),
  };
}

export default {
  async fetch(request, env, ctx) {
    if (new URL(request.url).pathname === "/__bench/trace") {
      const out = trace;
      trace = [];
      return Response.json(out);
    }
    trace = [];
    return stratus.fetch(request, instrument(env), ctx);
  },
};
