import { evictDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import fc from "fast-check";
import { describe, it } from "vitest";
import { ledgerOf } from "../../src/objects/quota-ledger";
import {
  call,
  expectOk,
  ledgersHeld,
  type Reply,
  type Tenant,
  unique,
  unlimitedTenantWithProject,
} from "../helpers";

/**
 * A project's membership and its members' holdings agree under concurrent, failing and retried
 * calls (README, "Another project's cap holds what its members take" and the `/v1/projects` rows
 * of "Operator and partner endpoints"): random sequences over one project P, the customers' base
 * projects and three customers, mixing the partner's membership calls (add, remove, a member's
 * limit, the project's cap) with a service's commissions (astakosclient's `mk_provisions` pair on
 * P, the pair on a base project, both at once; positive and negative, `force`, `auto_accept` or
 * pending then accepted or rejected one by one or many at once). Some steps are groups of 2-4 sent
 * at once, where one or two requests are held at their ledger call (before it, or once it took
 * effect) while the rest of the group runs and are then let go, a ledger call dies (before it
 * reaches the ledger) or takes effect and its answer is lost, or a ledger is evicted mid-flight.
 * A membership call answered 5xx is sent again, as a client would, until it is answered.
 *
 * The model, kept apart from the product, knows every holding's usage exactly (every commission's
 * answer is known: a ledger call that dies never reached its ledger); membership and limits it
 * predicts exactly for a step of one request, and for a group takes them from the product once the
 * group's answers are checked against each other (a 204 removal and no add meanwhile: not listed;
 * a 200 limit change and nothing else on that member: that limit; a 404 for a listed member with
 * nothing else on it: wrong). Checked after every step, through the API only (`/service_quotas`,
 * `/service_project_quotas`, `/v1/projects/{id}`, the pending list): usage and pending as the
 * model has them; a customer that is no member holds limit 0 of P; P's own usage and pending are
 * the sums of its members' and ex-members'; no accepted or pending commission took a holding past
 * the highest limit it had during the group unless forced; every listed member with a holding of P
 * may have its limit set; no 5xx without a fault injected into that request. At the end every
 * pending commission is resolved and nothing is left pending.
 *
 * Found (project-membership.test.ts): a removal's second close landing on a customer that had
 * joined again once the row was gone (a listed member refused every limit), and a join of the
 * member being removed reopening its ledger after the removal's close, so that a limit change past
 * its membership check gave a customer that is no member a limit on the cap.
 */

// ---- the arbitrary ---------------------------------------------------------------------------------

type Who = 0 | 1 | 2;
type Decision = "accept" | "reject";
/** `proj`: a member's `mk_provisions` pair on P; `base`: the pair on the customer's base project. */
type Part = { kind: "proj" | "base"; who: Who; q: number };
/** A serial the model has pending (any known if none), or any the model knows. */
type Pick = { kind: "pending" | "known"; i: number };

type Req =
  | { kind: "add" | "remove"; who: Who }
  | { kind: "limit"; who: Who; limit: number }
  | { kind: "cap"; limit: number }
  | { kind: "issue"; parts: Part[]; force: boolean; auto: boolean }
  | { kind: "resolve"; pick: Pick; decision: Decision }
  | { kind: "many"; accept: Pick[]; reject: Pick[] };

/**
 * How request `at` of a group meets the ledgers it calls (METHODS): `held` at a gate until the rest
 * of the group was answered (`before` the call, or `after` it took effect), or failing there
 * (`die`: never reaching it; `lost`: taking effect, the answer lost). `skip` lets its first such
 * call through (a removal's second `closeSource`).
 */
interface Instr {
  at: number;
  mode: "before" | "after" | "die" | "lost";
  skip: 0 | 1;
  held: boolean;
}

type Step =
  | { kind: "one"; req: Req }
  | {
      kind: "together";
      reqs: Req[];
      instrs: Instr[];
      /** Held requests are let go last first. */
      reversed: boolean;
      /** A customer's ledger (0-2) or P's (3), evicted after `delay` ms. */
      evict: { who: 0 | 1 | 2 | 3; delay: number } | null;
    };

/** The ledger methods the Worker calls for each request (the ones an Instr holds or breaks). */
const METHODS: Record<Req["kind"], string[]> = {
  add: ["openSource"],
  remove: ["closeSource"],
  limit: ["setMemberLimit"],
  cap: ["setLimit"],
  issue: ["issue"],
  resolve: ["resolve"],
  many: ["resolve"],
};

const who = fc.constantFrom<Who>(0, 1, 2);
const qty = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 1, max: 2 }) },
  { weight: 3, arbitrary: fc.integer({ min: -2, max: -1 }) },
);
const part: fc.Arbitrary<Part> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("proj" as const), who, q: qty }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("base" as const), who, q: qty }) },
);
const issue: fc.Arbitrary<Req> = fc.record({
  kind: fc.constant("issue" as const),
  parts: fc.array(part, { minLength: 1, maxLength: 2 }),
  force: fc.constantFrom(false, false, false, true),
  auto: fc.boolean(),
});
const pick: fc.Arbitrary<Pick> = fc.record({
  kind: fc.constantFrom("pending" as const, "pending" as const, "known" as const),
  i: fc.nat(30),
});
const decision = fc.constantFrom<Decision>("accept", "reject");
const resolve: fc.Arbitrary<Req> = fc.record({ kind: fc.constant("resolve" as const), pick, decision });
const many: fc.Arbitrary<Req> = fc.record({
  kind: fc.constant("many" as const),
  accept: fc.array(pick, { maxLength: 2 }),
  reject: fc.array(pick, { maxLength: 2 }),
});
const limit = fc.integer({ min: 0, max: 6 });
const admin: fc.Arbitrary<Req> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("add" as const), who }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("remove" as const), who }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("limit" as const), who, limit }) },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant("cap" as const), limit: fc.integer({ min: 2, max: 10 }) }),
  },
);
const req: fc.Arbitrary<Req> = fc.oneof(
  { weight: 5, arbitrary: admin },
  { weight: 4, arbitrary: issue },
  { weight: 3, arbitrary: resolve },
  { weight: 1, arbitrary: many },
);

/** Groups that race membership calls on one customer, and its commissions. */
const combo: fc.Arbitrary<Req[]> = fc
  .tuple(who, who, limit, fc.integer({ min: 0, max: 9 }), fc.boolean())
  .map(([b, a, l, which, auto]): Req[] => {
    const take = (w: Who, q: number): Req => ({
      kind: "issue",
      parts: [{ kind: "proj", who: w, q }],
      force: false,
      auto,
    });
    const pending: Pick = { kind: "pending", i: l };
    switch (which) {
      case 0:
        return [
          { kind: "limit", who: b, limit: l },
          { kind: "remove", who: b },
        ];
      case 1:
        return [
          { kind: "add", who: b },
          { kind: "remove", who: b },
        ];
      case 2:
        return [
          { kind: "remove", who: b },
          { kind: "add", who: b },
          { kind: "limit", who: b, limit: l },
        ];
      case 3:
        return [
          { kind: "remove", who: b },
          { kind: "remove", who: b },
        ];
      case 4:
        return [take(b, 3), { kind: "remove", who: b }];
      case 5:
        return [take(b, 2), { kind: "limit", who: b, limit: l }];
      case 6:
        return [{ kind: "cap", limit: 2 + l }, take(a, 2), take(b, 2)];
      case 7:
        return [{ kind: "remove", who: b }, take(b, -1), { kind: "add", who: b }];
      case 8:
        return [
          { kind: "resolve", pick: pending, decision: "accept" },
          { kind: "remove", who: b },
        ];
      default:
        return [{ kind: "add", who: b }, { kind: "limit", who: b, limit: l }, take(b, 1)];
    }
  });

const instr: fc.Arbitrary<Instr> = fc.record({
  at: fc.nat(3),
  mode: fc.constantFrom("before" as const, "after" as const, "die" as const, "lost" as const),
  skip: fc.constantFrom(0 as const, 1 as const),
  held: fc.constantFrom(true, true, false),
});

const evict = fc.oneof(
  { weight: 3, arbitrary: fc.constant(null) },
  {
    weight: 1,
    arbitrary: fc.record({
      who: fc.constantFrom(0 as const, 1 as const, 2 as const, 3 as const),
      delay: fc.integer({ min: 0, max: 15 }),
    }),
  },
);

const together = (reqs: fc.Arbitrary<Req[]>): fc.Arbitrary<Step> =>
  fc.record({
    kind: fc.constant("together" as const),
    reqs,
    instrs: fc.array(instr, { maxLength: 2 }),
    reversed: fc.boolean(),
    evict,
  });

/** Races on one customer whose shape matters (who waits where while the others run), too rare to wait for. */
const shaped: fc.Arbitrary<Step> = fc
  .tuple(who, limit, fc.integer({ min: 0, max: 3 }), fc.boolean(), evict)
  .map(([b, l, which, reversed, evict]): Step => {
    const remove: Req = { kind: "remove", who: b };
    const add: Req = { kind: "add", who: b };
    const set: Req = { kind: "limit", who: b, limit: l };
    const at = (i: number, mode: Instr["mode"], skip: 0 | 1 = 0): Instr => ({
      at: i,
      mode,
      skip,
      held: true,
    });
    const group = (reqs: Req[], instrs: Instr[]): Step => ({
      kind: "together",
      reqs,
      instrs,
      reversed,
      evict,
    });
    switch (which) {
      case 0:
        // A removal whose row is gone, its second close to come, while the member joins again and gets a limit.
        return group([remove, add, set], [at(0, "before", 1)]);
      case 1:
        // A removal past its membership check, while another removal, a re-join and a limit run.
        return group([remove, remove, add, set], [at(0, "before")]);
      case 2:
        // A limit change past its membership check and a join of the member still there, both waiting while it is removed.
        return group([set, add, remove], [at(0, "before"), at(1, "before")]);
      default:
        // A removal whose first close took effect and whose answer is lost, while a join and a limit run.
        return group([remove, add, set], [at(0, "lost")]);
    }
  });

const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("one" as const), req }) },
  { weight: 1, arbitrary: shaped },
  { weight: 3, arbitrary: together(combo) },
  { weight: 2, arbitrary: together(fc.array(req, { minLength: 2, maxLength: 4 })) },
);

// ---- the model ------------------------------------------------------------------------------------

/** A holding: `exists` once a limit made it (a member's holding of P is made by its first limit). */
interface H {
  exists: boolean;
  limit: number;
  min: number;
  max: number;
}

/** A holding by model key: `member:<who>` (of P), `project` (P's own), `system:<who>` (the base project's). */
interface Held {
  key: string;
  q: number;
}

interface Commission {
  held: Held[];
  state: "pending" | "accepted" | "rejected";
  force: boolean;
}

interface Run {
  t: Tenant;
  project: string;
  vm: string;
  members: Set<Who>;
  h: Map<string, H>;
  serials: number[];
  c: Map<number, Commission>;
  odd: string[];
  log: string[];
}

/** Low limits, so that issues contend for them; P's cap below what its members may take together. */
const LIMITS = { system: 8, member: 4, cap: 6 };

/** Runs per execution of the file (about 0.6 s each); soaked with 300 a run. */
const RUNS = 30;

const stats = {
  runs: 0,
  steps: 0,
  groups: 0,
  issued: 0,
  refused: 0,
  decided: 0,
  removed: 0,
  added: 0,
  limits: 0,
  notMember: 0,
  held: 0,
  died: 0,
  retried: 0,
  evictions: 0,
  fivexx: 0,
};

const WHO: readonly Who[] = [0, 1, 2];
const memberKey = (w: Who) => `member:${w}`;
const systemKey = (w: Who) => `system:${w}`;
const hOf = (r: Run, key: string) => r.h.get(key) as H;
/** Which ledger keeps a holding: a customer's (its base project's and its membership's) or P's. */
const ledgerOfKey = (key: string) => (key === "project" ? key : key.split(":")[1]);
const customer = (r: Run, w: Who) => r.t.customers[w] as string;

function partsOf(r: Run, parts: Part[]): { wire: unknown[]; held: Held[] } {
  const wire: unknown[] = [];
  const held = new Map<string, number>();
  const add = (key: string, q: number) => held.set(key, (held.get(key) ?? 0) + q);
  for (const p of parts) {
    const c = customer(r, p.who);
    const on = p.kind === "proj" ? r.project : c;
    wire.push({ holder: `user:${c}`, source: `project:${on}`, resource: r.vm, quantity: p.q });
    wire.push({ holder: `project:${on}`, source: null, resource: r.vm, quantity: p.q });
    if (p.kind === "proj") {
      add(memberKey(p.who), p.q);
      add("project", p.q);
    } else add(systemKey(p.who), p.q);
  }
  return { wire, held: [...held].map(([key, q]) => ({ key, q })) };
}

/** Astakos's check of a commission against the model: held, refused, or naming a holding not made yet. */
function predictIssue(r: Run, held: Held[], force: boolean): "held" | "refused" | "missing" {
  if (held.some((p) => !hOf(r, p.key).exists)) return "missing";
  for (const p of held) {
    const h = hOf(r, p.key);
    if (p.q >= 0 ? !force && h.max + p.q > h.limit : h.min + p.q < 0) return "refused";
  }
  return "held";
}

function applyIssue(r: Run, held: Held[], auto: boolean): void {
  for (const p of held) {
    const h = hOf(r, p.key);
    if (p.q >= 0) h.max += p.q;
    else h.min += p.q;
  }
  if (auto) applyDecision(r, held, "accept");
}

function applyDecision(r: Run, held: Held[], d: Decision): void {
  for (const p of held) {
    const h = hOf(r, p.key);
    if (d === "accept") {
      if (p.q >= 0) h.min += p.q;
      else h.max += p.q;
    } else if (p.q >= 0) h.max -= p.q;
    else h.min -= p.q;
  }
}

function serialOf(r: Run, p: Pick): number {
  if (p.kind === "pending") {
    const open = r.serials.filter((s) => r.c.get(s)?.state === "pending");
    if (open.length > 0) return open[p.i % open.length] as number;
  }
  if (r.serials.length === 0) return 1;
  return r.serials[p.i % r.serials.length] as number;
}

// ---- requests -----------------------------------------------------------------------------------------

/** One request as sent and answered, with what the model needs to read its answer. */
interface Sent {
  q: Req;
  what: string;
  reply: Reply;
  /** A fault was injected into it (a ledger call that died or lost its answer). */
  faulted: boolean;
  /** A client's retry of a request answered 5xx. */
  retry: boolean;
  held?: Held[];
  serials?: { accept: number[]; reject: number[] };
}

function describeReq(r: Run, q: Req): string {
  switch (q.kind) {
    case "add":
    case "remove":
      return `${q.kind} c${q.who}`;
    case "limit":
      return `limit c${q.who} = ${q.limit}`;
    case "cap":
      return `cap = ${q.limit}`;
    case "issue":
      return `issue ${q.parts.map((p) => `${p.kind}:c${p.who}${p.q >= 0 ? "+" : ""}${p.q}`).join(" ")}${q.force ? " force" : ""}${q.auto ? " auto" : ""}`;
    case "resolve":
      return `${q.decision} ${serialOf(r, q.pick)}`;
    case "many":
      return `resolve-many accept ${JSON.stringify(q.accept.map((p) => serialOf(r, p)))} reject ${JSON.stringify(q.reject.map((p) => serialOf(r, p)))}`;
  }
}

async function send(r: Run, q: Req, bindings?: Env, faulted = false, retry = false): Promise<Sent> {
  const { t, project, vm } = r;
  const as = { token: t.partnerKey, env: bindings };
  const what = `${retry ? "retry " : ""}${describeReq(r, q)}`;
  let reply: Reply;
  const sent: Partial<Sent> = {};
  switch (q.kind) {
    case "add":
      reply = await call("POST", `/v1/projects/${project}/members`, {
        ...as,
        body: { customer: customer(r, q.who) },
      });
      break;
    case "remove":
      reply = await call("DELETE", `/v1/projects/${project}/members/${customer(r, q.who)}`, as);
      break;
    case "limit":
      reply = await call("PUT", `/v1/projects/${project}/members/${customer(r, q.who)}/quotas`, {
        ...as,
        body: { resource: vm, limit: q.limit },
      });
      break;
    case "cap":
      reply = await call("PUT", `/v1/projects/${project}/quotas`, {
        ...as,
        body: { resource: vm, limit: q.limit },
      });
      break;
    case "issue": {
      const { wire, held } = partsOf(r, q.parts);
      sent.held = held;
      reply = await call("POST", "/account/v1.0/commissions", {
        token: t.serviceToken,
        env: bindings,
        body: { name: unique("c"), force: q.force, auto_accept: q.auto, provisions: wire },
      });
      break;
    }
    case "resolve": {
      const serial = serialOf(r, q.pick);
      sent.serials =
        q.decision === "accept" ? { accept: [serial], reject: [] } : { accept: [], reject: [serial] };
      reply = await call("POST", `/account/v1.0/commissions/${serial}/action`, {
        token: t.serviceToken,
        env: bindings,
        body: { [q.decision]: "" },
      });
      break;
    }
    case "many": {
      const accept = q.accept.map((p) => serialOf(r, p));
      const reject = q.reject.map((p) => serialOf(r, p));
      sent.serials = { accept, reject };
      reply = await call("POST", "/account/v1.0/commissions/action", {
        token: t.serviceToken,
        env: bindings,
        body: { accept, reject },
      });
      break;
    }
  }
  r.log.push(
    `${what}${faulted ? " [fault]" : ""} -> ${reply.status} ${reply.status >= 300 ? reply.text.slice(0, 160) : ""}`,
  );
  if (reply.status >= 500) stats.fivexx++;
  return { q, what, reply, faulted, retry, ...sent };
}

/**
 * What a commission call's answer tells the model (the same for a step alone and in a group):
 * an issue answered 201 holds, a decision answered 200 took effect; anything else changed nothing.
 * Applied after the group, once every answer is in; `decided` collects each serial's decisions.
 */
function commissionEffects(r: Run, s: Sent, decided: Map<number, Set<Decision>>): void {
  const { q, reply, what } = s;
  if (q.kind === "issue") {
    if (reply.status === 201) {
      stats.issued++;
      const serial = reply.body.serial as number;
      if (r.c.has(serial)) r.odd.push(`${what}: serial ${serial} handed out twice`);
      r.serials.push(serial);
      r.c.set(serial, { held: s.held as Held[], state: q.auto ? "accepted" : "pending", force: q.force });
      applyIssue(r, s.held as Held[], q.auto);
    } else if (reply.status === 413) stats.refused++;
    else if (reply.status !== 404 && reply.status < 500)
      r.odd.push(`${what}: unexpected ${reply.status} ${reply.text}`);
    return;
  }
  if (q.kind !== "resolve" && q.kind !== "many") return;
  const decide = (serial: number, d: Decision) => {
    const seen = decided.get(serial) ?? new Set<Decision>();
    const again = seen.has(d);
    seen.add(d);
    decided.set(serial, seen);
    if (seen.size > 1) r.odd.push(`${what}: serial ${serial} answered both accepted and rejected`);
    const c = r.c.get(serial);
    if (!c) return r.odd.push(`${what}: serial ${serial} ${d}ed, never issued`);
    // One decision sent twice at once on a commission across ledgers: the second finishes the first.
    if (again && new Set(c.held.map((p) => ledgerOfKey(p.key))).size > 1) return;
    if (c.state !== "pending") return r.odd.push(`${what}: serial ${serial} ${d}ed though ${c.state}`);
    stats.decided++;
    c.state = d === "accept" ? "accepted" : "rejected";
    applyDecision(r, c.held, d);
  };
  if (q.kind === "resolve") {
    if (reply.status === 200) decide(s.serials?.accept[0] ?? (s.serials?.reject[0] as number), q.decision);
    else if (reply.status !== 404 && reply.status < 500)
      r.odd.push(`${what}: unexpected ${reply.status} ${reply.text}`);
    return;
  }
  if (reply.status !== 200) {
    if (reply.status < 500) r.odd.push(`${what}: unexpected ${reply.status} ${reply.text}`);
    return;
  }
  const { accept, reject } = s.serials as { accept: number[]; reject: number[] };
  const body = reply.body as {
    accepted: number[];
    rejected: number[];
    failed: Array<[number, Record<string, unknown>]>;
  };
  for (const serial of body.accepted) {
    if (!accept.includes(serial) || reject.includes(serial))
      r.odd.push(`${what}: ${serial} accepted, not asked`);
    decide(serial, "accept");
  }
  for (const serial of body.rejected) {
    if (!reject.includes(serial) || accept.includes(serial))
      r.odd.push(`${what}: ${serial} rejected, not asked`);
    decide(serial, "reject");
  }
  for (const [serial, f] of body.failed) {
    const kind = Object.keys(f)[0];
    const ok =
      kind === "itemNotFound" ||
      (kind === "badRequest" && accept.includes(serial) && reject.includes(serial)) ||
      (kind === "serviceUnavailable" && s.faulted);
    if (!ok) r.odd.push(`${what}: ${serial} failed ${JSON.stringify(f)}`);
  }
}

function count(s: Sent): void {
  const st = s.reply.status;
  if (s.q.kind === "add" && st === 200) stats.added++;
  if (s.q.kind === "remove" && st === 204) stats.removed++;
  if (s.q.kind === "limit" && st === 200) stats.limits++;
  if ((s.q.kind === "limit" || s.q.kind === "remove") && st === 404) stats.notMember++;
}

// ---- reading the product -------------------------------------------------------------------------

interface Actual {
  members: Set<Who>;
  h: Map<string, { limit: number; usage: number; pending: number }>;
  pending: number[];
}

async function readActual(r: Run): Promise<Actual> {
  const { t, project, vm } = r;
  const p = await expectOk(call("GET", `/v1/projects/${project}`, { token: t.partnerKey }));
  const members = new Set<Who>();
  for (const id of p.members as string[]) {
    const w = t.customers.indexOf(id);
    if (w < 0) r.odd.push(`P lists ${id}, no customer of the run`);
    else members.add(w as Who);
  }
  const all = await expectOk(call("GET", "/account/v1.0/service_quotas", { token: t.serviceToken }));
  const own = await expectOk(call("GET", "/account/v1.0/service_project_quotas", { token: t.serviceToken }));
  const h: Actual["h"] = new Map();
  const pOwn = own[project]?.[vm];
  if (pOwn)
    h.set("project", { limit: pOwn.project_limit, usage: pOwn.project_usage, pending: pOwn.project_pending });
  for (const w of WHO) {
    const c = customer(r, w);
    const s = all[c]?.system?.[vm];
    const sys = s && { limit: s.limit, usage: s.usage, pending: s.pending };
    h.set(systemKey(w), sys);
    const base = own[c]?.[vm];
    const asBase = { limit: base?.project_limit, usage: base?.project_usage, pending: base?.project_pending };
    if (
      JSON.stringify(asBase) !==
      JSON.stringify({ limit: sys?.limit, usage: sys?.usage, pending: sys?.pending })
    )
      r.odd.push(
        `base project of c${w} ${JSON.stringify(base)} is not its system holding ${JSON.stringify(sys)}`,
      );
    const m = all[c]?.[project]?.[vm];
    if (!m) continue;
    h.set(memberKey(w), { limit: m.limit, usage: m.usage, pending: m.pending });
    const seen = { limit: m.project_limit, usage: m.project_usage, pending: m.project_pending };
    if (JSON.stringify(seen) !== JSON.stringify(h.get("project")))
      r.odd.push(
        `c${w} sees P's own ${JSON.stringify(seen)}, P's own is ${JSON.stringify(h.get("project"))}`,
      );
  }
  const pending = await expectOk(call("GET", "/account/v1.0/commissions", { token: t.serviceToken }));
  return { members, h, pending: [...(pending as number[])].sort((a, b) => a - b) };
}

const view = (h: H) => (h.exists ? { limit: h.limit, usage: h.max, pending: h.max - h.min } : undefined);

/** The invariants that hold of any quiet state, whatever led there. */
function invariants(r: Run, a: Actual, when: string): void {
  let usage = 0;
  let pending = 0;
  for (const w of WHO) {
    const m = a.h.get(memberKey(w));
    if (!m) continue;
    usage += m.usage;
    pending += m.pending;
    if (!a.members.has(w) && m.limit !== 0)
      r.odd.push(`${when}: c${w} is no member of P, yet holds limit ${m.limit} of it`);
  }
  const own = a.h.get("project");
  // A pending commission in which one member releases what another takes holds P's net (merged per
  // holding, as Astakos does) but each member's part: the sums agree again once it is resolved.
  const mixed = [...r.c.values()].some((c) => {
    if (c.state !== "pending") return false;
    const qs = c.held.filter((p) => p.key.startsWith("member:")).map((p) => p.q);
    return qs.some((q) => q > 0) && qs.some((q) => q < 0);
  });
  if (!mixed && (own?.usage !== usage || own.pending !== pending))
    r.odd.push(
      `${when}: P's own usage/pending ${own?.usage}/${own?.pending}, its members' ${usage}/${pending}`,
    );
  for (const [k, h] of a.h)
    if (h.usage - h.pending < 0 || h.pending < 0) r.odd.push(`${when}: ${k} below zero ${JSON.stringify(h)}`);
}

/** Usage and pending as the model has them (it knows every commission's answer); limits too if `exact`. */
function compare(r: Run, a: Actual, when: string, exact: boolean): void {
  for (const [k, h] of r.h) {
    const seen = a.h.get(k);
    if (exact) {
      if (JSON.stringify(seen) !== JSON.stringify(view(h)))
        r.odd.push(`${when}: ${k} is ${JSON.stringify(seen)}, model ${JSON.stringify(view(h))}`);
      continue;
    }
    // After a group only usage and pending are the model's: a limit set meanwhile may have made the holding.
    if (!seen && !h.exists) continue;
    const want = { usage: h.max, pending: h.max - h.min };
    if (!seen || seen.usage !== want.usage || seen.pending !== want.pending)
      r.odd.push(`${when}: ${k} is ${JSON.stringify(seen)}, model ${JSON.stringify(want)}`);
  }
  if (exact && JSON.stringify([...a.members].sort()) !== JSON.stringify([...r.members].sort()))
    r.odd.push(
      `${when}: P's members ${JSON.stringify([...a.members])}, model ${JSON.stringify([...r.members])}`,
    );
  const modelPending = [...r.c]
    .filter(([, c]) => c.state === "pending")
    .map(([s]) => s)
    .sort((x, y) => x - y);
  if (JSON.stringify(a.pending) !== JSON.stringify(modelPending))
    r.odd.push(`${when}: pending list ${JSON.stringify(a.pending)}, model ${JSON.stringify(modelPending)}`);
}

/** The model takes membership and limits (and which holdings exist) from the product, so one finding does not cascade. */
function resync(r: Run, a: Actual): void {
  r.members = new Set(a.members);
  for (const [k, h] of r.h) {
    const seen = a.h.get(k);
    h.exists = seen !== undefined;
    if (seen) {
      h.limit = seen.limit;
      h.max = seen.usage;
      h.min = seen.usage - seen.pending;
    }
  }
}

// ---- steps --------------------------------------------------------------------------------------------

/** A step of one request, nothing else in flight: every answer and the state after it are predicted. */
async function one(r: Run, q: Req, when: string): Promise<void> {
  const member = "who" in q && r.members.has(q.who);
  let expected: number[] = [];
  if (q.kind === "add") expected = [200];
  if (q.kind === "remove" || q.kind === "limit")
    expected = [member ? (q.kind === "remove" ? 204 : 200) : 404];
  if (q.kind === "cap") expected = [200];
  let predicted: ReturnType<typeof predictIssue> | null = null;
  if (q.kind === "issue") {
    predicted = predictIssue(r, partsOf(r, q.parts).held, q.force);
    expected = predicted === "held" ? [201] : predicted === "refused" ? [413] : [404, 413];
  }
  if (q.kind === "resolve") expected = [r.c.get(serialOf(r, q.pick))?.state === "pending" ? 200 : 404];
  if (q.kind === "many") expected = [200];
  const s = await send(r, q);
  if (!expected.includes(s.reply.status))
    r.odd.push(
      `${when}: ${s.what} answered ${s.reply.status} ${s.reply.text.slice(0, 200)}, model expects ${expected.join(" or ")}`,
    );
  if (q.kind === "many" && s.reply.status === 200) {
    // Each serial pending in the model is decided as asked; any other fails.
    const { accept, reject } = s.serials as { accept: number[]; reject: number[] };
    const pendingNow = (x: number) => r.c.get(x)?.state === "pending";
    const want = {
      accepted: [...new Set(accept.filter((x) => pendingNow(x) && !reject.includes(x)))].sort(),
      rejected: [...new Set(reject.filter((x) => pendingNow(x) && !accept.includes(x)))].sort(),
    };
    const got = { accepted: [...s.reply.body.accepted].sort(), rejected: [...s.reply.body.rejected].sort() };
    if (JSON.stringify(got) !== JSON.stringify(want))
      r.odd.push(`${when}: ${s.what} answered ${s.reply.text}, model expects ${JSON.stringify(want)}`);
  }
  commissionEffects(r, s, new Map());
  count(s);
  const st = s.reply.status;
  if (q.kind === "add" && st === 200) r.members.add(q.who);
  if (q.kind === "remove" && st === 204) {
    r.members.delete(q.who);
    hOf(r, memberKey(q.who)).limit = 0;
  }
  if (q.kind === "limit" && st === 200) {
    const h = hOf(r, memberKey(q.who));
    h.limit = q.limit;
    h.exists = true;
  }
  if (q.kind === "cap" && st === 200) hOf(r, "project").limit = q.limit;
  const a = await readActual(r);
  invariants(r, a, when);
  compare(r, a, when, true);
  resync(r, a);
}

/**
 * A group sent at once: held requests first, each until it reaches its gate (or is answered
 * without reaching it), then the rest (and the eviction), then the held ones let go one by one.
 */
async function group(r: Run, s: Extract<Step, { kind: "together" }>, when: string): Promise<void> {
  stats.groups++;
  const n = s.reqs.length;
  const instrs = new Map<number, Instr>();
  for (const i of s.instrs) if (!instrs.has(i.at % n)) instrs.set(i.at % n, i);
  const gates = new Map<number, ReturnType<typeof ledgersHeld>>();
  for (const [i, ins] of instrs) {
    const q = s.reqs[i] as Req;
    // A commission call's answer lost would leave the model not knowing what it did: only `die` there.
    const mode =
      ins.mode === "lost" && (q.kind === "issue" || q.kind === "resolve" || q.kind === "many")
        ? "die"
        : ins.mode;
    gates.set(i, ledgersHeld(METHODS[q.kind], mode, ins.skip));
    r.log.push(
      `  (request ${i}: ${ins.held ? "held " : ""}${mode} ${METHODS[q.kind]}${ins.skip ? " after the first" : ""})`,
    );
  }
  const evictee = s.evict ? (s.evict.who === 3 ? `project:${r.project}` : customer(r, s.evict.who)) : null;
  r.log.push(
    `-- together${evictee ? ` evict ${evictee} after ${s.evict?.delay}ms` : ""}${s.reversed ? " (let go last first)" : ""}`,
  );
  const before = structuredClone({ members: [...r.members], h: [...r.h] });
  const sent: Sent[] = new Array(n);
  const started: Array<Promise<void>> = new Array(n);
  const faulted = (i: number) => {
    const m = instrs.get(i)?.mode;
    return m === "die" || m === "lost";
  };
  const start = (i: number) => {
    started[i] = send(r, s.reqs[i] as Req, gates.get(i)?.env, faulted(i)).then((x) => {
      sent[i] = x;
    });
  };
  const held = [...instrs].filter(([, ins]) => ins.held).map(([i]) => i);
  for (const i of held) {
    start(i);
    stats.held++;
    await Promise.race([gates.get(i)?.reached, started[i]]);
  }
  for (const [i, ins] of instrs) if (!ins.held) gates.get(i)?.release();
  const evicting = async () => {
    if (!evictee || !s.evict) return;
    await new Promise((resolve) => setTimeout(resolve, s.evict?.delay));
    await evictDurableObject(ledgerOf(env, evictee)).catch((e) => r.log.push(`evict threw ${e}`));
    stats.evictions++;
  };
  const rest: Array<Promise<void>> = [evicting()];
  for (let i = 0; i < n; i++) {
    if (held.includes(i)) continue;
    start(i);
    rest.push(started[i] as Promise<void>);
  }
  await Promise.all(rest);
  for (const i of s.reversed ? [...held].reverse() : held) {
    gates.get(i)?.release();
    await started[i];
  }
  r.log.push("-- end together");
  // A membership call answered 5xx is sent again by its client until it is answered.
  const answers = [...sent];
  for (const x of sent) {
    let last = x;
    for (
      let attempt = 0;
      attempt < 3 && last.reply.status >= 500 && !["issue", "resolve", "many"].includes(x.q.kind);
      attempt++
    ) {
      stats.retried++;
      last = await send(r, x.q, undefined, false, true);
      answers.push(last);
    }
  }
  for (const x of answers) {
    if (x.reply.status >= 500 && !x.faulted)
      r.odd.push(`${when}: ${x.what} -> ${x.reply.status} ${x.reply.text} with no fault injected into it`);
    if (x.reply.status >= 500 && x.faulted) stats.died++;
  }
  const decided = new Map<number, Set<Decision>>();
  for (const x of answers) {
    commissionEffects(r, x, decided);
    count(x);
  }
  const a = await readActual(r);
  invariants(r, a, when);
  compare(r, a, when, false);
  judge(r, answers, new Set(before.members), new Map(before.h), a, when);
  resync(r, a);
  await probeMembers(r, when);
}

/**
 * The group's answers against each other and the state after it: what no order of the requests
 * (each taking effect at one point between its sending and its answer) would have given.
 */
function judge(
  r: Run,
  answers: Sent[],
  members0: Set<Who>,
  h0: Map<string, H>,
  a: Actual,
  when: string,
): void {
  const on = (w: Who, kind: Req["kind"]) =>
    answers.filter((x) => x.q.kind === kind && "who" in x.q && x.q.who === w);
  for (const w of WHO) {
    const removes = on(w, "remove");
    const adds = on(w, "add");
    const limits = on(w, "limit");
    const was = members0.has(w);
    const is = a.members.has(w);
    const h1 = a.h.get(memberKey(w));
    const h = h0.get(memberKey(w)) as H;
    if (removes.some((x) => x.reply.status === 204) && adds.length === 0 && is)
      r.odd.push(`${when}: c${w}'s removal answered 204, nothing added it again, yet it is listed`);
    if (adds.some((x) => x.reply.status === 200) && removes.length === 0 && !is)
      r.odd.push(`${when}: c${w} was added (200), nothing removed it, yet it is not listed`);
    if (adds.length === 0 && removes.length === 0 && was !== is)
      r.odd.push(`${when}: c${w}'s membership went from ${was} to ${is} with no call on it`);
    if (was && removes.length === 1 && removes[0]?.reply.status === 404)
      r.odd.push(`${when}: c${w} was a member, its one removal answered 404`);
    if (was && removes.length === 0)
      for (const x of limits)
        if (x.reply.status === 404) r.odd.push(`${when}: c${w} is a member, ${x.what} answered 404`);
    const set = limits.filter((x) => x.reply.status === 200).map((x) => x.q as { limit: number });
    const [only] = set;
    if (removes.length === 0 && limits.length === 1 && only && h1?.limit !== only.limit)
      r.odd.push(`${when}: limit ${only.limit} answered 200, the limit is ${h1?.limit}`);
    if (removes.length === 0 && limits.length === 0 && h.exists && h1?.limit !== h.limit)
      r.odd.push(`${when}: c${w}'s limit went from ${h.limit} to ${h1?.limit} with nothing setting it`);
  }
  const caps = answers.filter((x) => x.q.kind === "cap");
  const cap = a.h.get("project")?.limit;
  if (caps.length === 0 && cap !== (h0.get("project") as H).limit)
    r.odd.push(`${when}: P's cap changed to ${cap}`);
  if (caps.length === 1 && caps[0]?.reply.status === 200 && cap !== (caps[0].q as { limit: number }).limit)
    r.odd.push(`${when}: ${caps[0].what} answered 200, the cap is ${cap}`);
  // No commission took a holding past the highest limit it had meanwhile, unless forced.
  const forced = new Set<string>();
  for (const x of answers)
    if (x.q.kind === "issue" && x.q.force && x.reply.status === 201)
      for (const p of x.held ?? []) if (p.q > 0) forced.add(p.key);
  for (const [k, h] of h0) {
    const after = a.h.get(k);
    if (!after || forced.has(k)) continue;
    const limits = [h.exists ? h.limit : 0, after.limit];
    for (const x of answers) {
      if (x.q.kind === "limit" && k === memberKey(x.q.who)) limits.push(x.q.limit);
      if (x.q.kind === "cap" && k === "project") limits.push(x.q.limit);
    }
    if (after.usage > Math.max(h.max, ...limits))
      r.odd.push(
        `${when}: ${k} usage ${after.usage} past every limit it had (${limits.join(", ")}) and its usage before (${h.max}), no force`,
      );
  }
}

/** Every listed member with a holding of P may have its limit set (to what it is: nothing changes). */
async function probeMembers(r: Run, when: string): Promise<void> {
  for (const w of r.members) {
    const h = hOf(r, memberKey(w));
    if (!h.exists) continue;
    const reply = await call("PUT", `/v1/projects/${r.project}/members/${customer(r, w)}/quotas`, {
      token: r.t.partnerKey,
      body: { resource: r.vm, limit: h.limit },
    });
    if (reply.status !== 200)
      r.odd.push(
        `${when}: c${w} is listed in P, setting its limit (${h.limit}) again answered ${reply.status} ${reply.text}`,
      );
  }
}

// ---- a run ----------------------------------------------------------------------------------------------

async function setUp(): Promise<Run> {
  const { t, project } = await unlimitedTenantWithProject(3, LIMITS.system);
  const vm = t.resources[0] as string;
  const h = new Map<string, H>();
  // c0 and c1 are members with a limit; c2 is not (it has no holding of P until its first limit).
  for (const w of WHO) {
    h.set(systemKey(w), { exists: true, limit: LIMITS.system, min: 0, max: 0 });
    h.set(memberKey(w), { exists: w !== 2, limit: w !== 2 ? LIMITS.member : 0, min: 0, max: 0 });
    if (w === 2) continue;
    await expectOk(
      call("POST", `/v1/projects/${project}/members`, {
        token: t.partnerKey,
        body: { customer: t.customers[w] },
      }),
    );
    await expectOk(
      call("PUT", `/v1/projects/${project}/members/${t.customers[w]}/quotas`, {
        token: t.partnerKey,
        body: { resource: vm, limit: LIMITS.member },
      }),
    );
  }
  await expectOk(
    call("PUT", `/v1/projects/${project}/quotas`, {
      token: t.partnerKey,
      body: { resource: vm, limit: LIMITS.cap },
    }),
  );
  h.set("project", { exists: true, limit: LIMITS.cap, min: 0, max: 0 });
  return { t, project, vm, members: new Set([0, 1]), h, serials: [], c: new Map(), odd: [], log: [] };
}

async function runSequence(steps: Step[]): Promise<Run> {
  const r = await setUp();
  stats.runs++;
  stats.steps += steps.length;
  for (const [i, s] of steps.entries()) {
    if (s.kind === "one") await one(r, s.req, `step ${i}`);
    else await group(r, s, `step ${i}`);
  }
  // Settled: every pending commission resolved (half each way), nothing left pending anywhere.
  const open = [...r.c].filter(([, c]) => c.state === "pending").map(([x]) => x);
  await one(r, { kind: "many", accept: [], reject: [] }, "settling (nothing)");
  if (open.length > 0) {
    const accept = open.filter((_, i) => i % 2 === 0);
    const reject = open.filter((_, i) => i % 2 === 1);
    const reply = await call("POST", "/account/v1.0/commissions/action", {
      token: r.t.serviceToken,
      body: { accept, reject },
    });
    r.log.push(
      `settle: resolve-many ${JSON.stringify({ accept, reject })} -> ${reply.status} ${reply.text.slice(0, 200)}`,
    );
    if (reply.status !== 200 || reply.body.failed.length > 0) r.odd.push(`settling: ${reply.text}`);
    for (const x of accept) {
      (r.c.get(x) as Commission).state = "accepted";
      applyDecision(r, (r.c.get(x) as Commission).held, "accept");
    }
    for (const x of reject) {
      (r.c.get(x) as Commission).state = "rejected";
      applyDecision(r, (r.c.get(x) as Commission).held, "reject");
    }
  }
  const a = await readActual(r);
  invariants(r, a, "settled");
  compare(r, a, "settled", true);
  for (const [k, h] of a.h)
    if (h.pending !== 0) r.odd.push(`settled: ${k} still pending ${JSON.stringify(h)}`);
  await probeMembers(r, "settled");
  return r;
}

describe("a project's membership and its members' holdings agree under concurrent, failing and retried calls", () => {
  it("holds for every sequence", async () => {
    // Printed with the stats, so a passing soak names what it ran (a failure prints it too).
    const seed = (Math.random() * 2 ** 31) | 0;
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 3, maxLength: 8 }), async (steps) => {
        const r = await runSequence(steps);
        if (r.odd.length > 0)
          throw new Error(`findings:\n${r.odd.join("\n")}\nsequence:\n${r.log.join("\n")}`);
      }),
      { seed, numRuns: RUNS, interruptAfterTimeLimit: 50_000, endOnFailure: true },
    );
    console.log(`projects-concurrent (seed ${seed}): ${JSON.stringify(stats)}`);
  }, 120_000);
});
