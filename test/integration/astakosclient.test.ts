import { describe, expect, it } from "vitest";
import { MAX_LISTED_HOLDERS } from "../../src/domain/quota";
import { call, expectOk, type Tenant, tenant } from "../helpers";

/**
 * What Synnefo's astakosclient sends (its code since the project format of Synnefo 0.15), request
 * for request: the paths, query strings and bodies its public methods build.
 */

const base = "/account/v1.0";

describe("service_get_quotas(user=[a, b])", () => {
  it("answers the listed users, as `?user=a,b` joins them", async () => {
    const t = await tenant({ customers: 3, limit: 4 });
    const [a, b, c] = t.customers as [string, string, string];
    const r = await expectOk(call("GET", `${base}/service_quotas?user=${a},${b}`, { token: t.serviceToken }));
    expect(Object.keys(r).sort()).toEqual([a, b].sort());
    expect(r[a].system[t.resources[0]!]).toMatchObject({ usage: 0, limit: 4, pending: 0 });
    expect(r[c]).toBeUndefined();
    // Its newer versions build the query with urlencode, which escapes the comma.
    const encoded = await expectOk(
      call("GET", `${base}/service_quotas?user=${a}%2C${b}`, { token: t.serviceToken }),
    );
    expect(encoded).toEqual(r);
    // A repeat counts once; another partner's user is left out, as one alone is.
    const other = await tenant({ customers: 1 });
    const mixed = await expectOk(
      call("GET", `${base}/service_quotas?user=${a},${a},${other.customers[0]}`, { token: t.serviceToken }),
    );
    expect(Object.keys(mixed)).toEqual([a]);
  });

  it("matches nothing by a member that is no id, as Astakos does (404 if nothing is left), and answers 400 past the bound", async () => {
    const t = await tenant({ customers: 1 });
    const [a] = t.customers as [string];
    for (const query of [`user=${a},nope`, `user=${a},`]) {
      expect(
        Object.keys(
          await expectOk(call("GET", `${base}/service_quotas?${query}`, { token: t.serviceToken })),
        ),
      ).toEqual([a]);
    }
    for (const named of ["nope", ""]) {
      const r = await call("GET", `${base}/service_quotas?user=${named}`, { token: t.serviceToken });
      expect(r.status, named).toBe(404);
      expect(r.body.itemNotFound.message).toBe(`No user with UUID '${named}'`);
    }
    const many = Array.from({ length: MAX_LISTED_HOLDERS + 1 }, () => a).join(",");
    const r = await call("GET", `${base}/service_quotas?user=${many}`, { token: t.serviceToken });
    expect(r.status).toBe(400);
    expect(r.body.badRequest.message).toBe(`/user: at most ${MAX_LISTED_HOLDERS} values`);
    const bound = Array.from({ length: MAX_LISTED_HOLDERS }, () => a).join(",");
    expect(
      (await call("GET", `${base}/service_quotas?user=${bound}`, { token: t.serviceToken })).status,
    ).toBe(200);
  });
});

/** A project of the tenant's partner whose members are `members`, each allowed `memberLimit`, capped at `cap`. */
async function project(t: Tenant, members: readonly string[], cap: number, memberLimit: number) {
  const p = await expectOk(
    call("POST", "/v1/projects", { token: t.partnerKey, body: { name: "research" } }),
    201,
  );
  for (const customer of members) {
    await expectOk(call("POST", `/v1/projects/${p.id}/members`, { token: t.partnerKey, body: { customer } }));
    for (const resource of t.resources) {
      await expectOk(
        call("PUT", `/v1/projects/${p.id}/members/${customer}/quotas`, {
          token: t.partnerKey,
          body: { resource, limit: memberLimit },
        }),
      );
    }
  }
  for (const resource of t.resources) {
    await expectOk(
      call("PUT", `/v1/projects/${p.id}/quotas`, { token: t.partnerKey, body: { resource, limit: cap } }),
    );
  }
  return p.id as string;
}

/** astakosclient's `mk_provisions(holder, source, resource, quantity)`: the member's and the project's. */
const mkProvisions = (holder: string, source: string, resource: string, quantity: number) => [
  { holder: `user:${holder}`, source: `project:${source}`, resource, quantity },
  { holder: `project:${source}`, source: null, resource, quantity },
];

/** The request astakosclient's `_issue_commission` posts. */
const issue = (t: Tenant, provisions: unknown[], options: { auto_accept?: boolean; force?: boolean } = {}) =>
  call("POST", `${base}/commissions`, {
    token: t.serviceToken,
    body: { force: options.force ?? false, auto_accept: options.auto_accept ?? false, name: "", provisions },
  });

const quotasOf = (t: Tenant, user: string) =>
  expectOk(call("GET", `${base}/service_quotas?user=${user}`, { token: t.serviceToken })).then(
    (q) => q[user],
  );

const projectQuotasOf = (t: Tenant, projects: readonly string[]) =>
  expectOk(
    call("GET", `${base}/service_project_quotas?project=${projects.join(",")}`, { token: t.serviceToken }),
  );

describe("issue_one_commission(holder, {(source, resource): quantity}) on the base project", () => {
  it("changes the same holding as the spec's `system` commission, both ways", async () => {
    const t = await tenant({ customers: 1, limit: 10 });
    const [u] = t.customers as [string];
    const [vm] = t.resources as [string];
    // The new dialect, on the base project (its id is the customer's).
    const r1 = await issue(t, mkProvisions(u, u, vm, 3), { auto_accept: true });
    expect(r1.status).toBe(201);
    // The old dialect, on `system`.
    const r2 = await issue(t, [{ holder: u, source: "system", resource: vm, quantity: 2 }], {
      auto_accept: true,
    });
    expect(r2.status).toBe(201);
    const q = await quotasOf(t, u);
    expect(q.system[vm]).toEqual({ usage: 5, limit: 10, pending: 0 });
    expect(q[u][vm]).toEqual({
      usage: 5,
      limit: 10,
      pending: 0,
      project_limit: 10,
      project_usage: 5,
      project_pending: 0,
    });
    expect((await projectQuotasOf(t, [u]))[u][vm]).toEqual({
      project_limit: 10,
      project_usage: 5,
      project_pending: 0,
    });
    // The limit holds across dialects: 5 more in the new one passes it.
    const over = await issue(t, mkProvisions(u, u, vm, 6));
    expect(over.status).toBe(413);
    expect(over.body.overLimit.data).toEqual({
      provision: { holder: `user:${u}`, source: `project:${u}`, resource: vm, quantity: 6 },
      name: "NoCapacityError",
      limit: 10,
      usage: 5,
    });
    // Both dialects on one holding in one commission are checked as their sum, and told so.
    const both = await issue(t, [
      { holder: u, source: "system", resource: vm, quantity: 3 },
      ...mkProvisions(u, u, vm, 3),
    ]);
    expect(both.status).toBe(413);
    expect(both.body.overLimit.message).toContain("usage 5 + 6 exceeds limit 10");
    expect(both.body.overLimit.data).toEqual({
      provision: { holder: u, source: "system", resource: vm, quantity: 6 },
      name: "NoCapacityError",
      limit: 10,
      usage: 5,
    });
    // A release in the old dialect of what the new one took.
    expect(
      (await issue(t, [{ holder: u, source: "system", resource: vm, quantity: -3 }], { auto_accept: true }))
        .status,
    ).toBe(201);
    expect((await quotasOf(t, u)).system[vm].usage).toBe(2);
  });

  it("is pending, described as sent, and accepted or rejected as any other", async () => {
    const t = await tenant({ customers: 1, limit: 10 });
    const [u] = t.customers as [string];
    const [vm, ram] = t.resources as [string, string];
    const provisions = [...mkProvisions(u, u, vm, 1), ...mkProvisions(u, u, ram, 5)];
    const a = (await expectOk(issue(t, provisions), 201)).serial;
    const b = (await expectOk(issue(t, mkProvisions(u, u, vm, 2)), 201)).serial;
    expect(await expectOk(call("GET", `${base}/commissions`, { token: t.serviceToken }))).toEqual([a, b]);
    const described = await expectOk(call("GET", `${base}/commissions/${a}`, { token: t.serviceToken }));
    expect(described.provisions).toEqual(provisions);
    expect((await quotasOf(t, u)).system[vm]).toEqual({ usage: 3, limit: 10, pending: 3 });
    await expectOk(
      call("POST", `${base}/commissions/${a}/action`, { token: t.serviceToken, body: { accept: "" } }),
    );
    const resolved = await expectOk(
      call("POST", `${base}/commissions/action`, {
        token: t.serviceToken,
        body: { accept: [], reject: [b] },
      }),
    );
    expect(resolved).toEqual({ accepted: [], rejected: [b], failed: [] });
    expect((await quotasOf(t, u)).system[vm]).toEqual({ usage: 1, limit: 10, pending: 0 });
    expect((await quotasOf(t, u)).system[ram]).toEqual({ usage: 5, limit: 10, pending: 0 });
  });

  it("answers 400 for a base project's own provision without its member's", async () => {
    const t = await tenant({ customers: 1, limit: 10 });
    const [u] = t.customers as [string];
    const [vm] = t.resources as [string];
    const alone = await issue(t, [{ holder: `project:${u}`, source: null, resource: vm, quantity: 1 }]);
    expect(alone.status).toBe(400);
    expect(alone.body.badRequest.message).toContain("base project");
    const unequal = await issue(t, [
      mkProvisions(u, u, vm, 1)[0],
      { holder: `project:${u}`, source: null, resource: vm, quantity: 2 },
    ]);
    expect(unequal.status).toBe(400);
    expect((await quotasOf(t, u)).system[vm].usage).toBe(0);
  });
});

describe("projects", () => {
  it("a project's own limit stops its third member, whose own limit allows it", async () => {
    const t = await tenant({ customers: 3, limit: 10 });
    const [a, b, c] = t.customers as [string, string, string];
    const [vm] = t.resources as [string];
    const p = await project(t, [a, b, c], 5, 3);
    expect((await issue(t, mkProvisions(a, p, vm, 2), { auto_accept: true })).status).toBe(201);
    expect((await issue(t, mkProvisions(b, p, vm, 2), { auto_accept: true })).status).toBe(201);
    const third = await issue(t, mkProvisions(c, p, vm, 2));
    expect(third.status).toBe(413);
    expect(third.body.overLimit.message).toBe(`${vm} of project:${p} (its own): usage 4 + 2 exceeds limit 5`);
    expect(third.body.overLimit.data).toEqual({
      provision: { holder: `project:${p}`, source: null, resource: vm, quantity: 2 },
      name: "NoCapacityError",
      limit: 5,
      usage: 4,
    });
    // All or nothing: the third member's own holding was not left holding anything.
    const q = await quotasOf(t, c);
    expect(q[p][vm]).toEqual({
      usage: 0,
      limit: 3,
      pending: 0,
      project_limit: 5,
      project_usage: 4,
      project_pending: 0,
    });
    expect((await issue(t, mkProvisions(c, p, vm, 1), { auto_accept: true })).status).toBe(201);
    expect((await projectQuotasOf(t, [p]))[p][vm]).toEqual({
      project_limit: 5,
      project_usage: 5,
      project_pending: 0,
    });
    // Its member limit stops a member too, naming the member's provision.
    const own = await issue(t, mkProvisions(a, p, vm, 2), { force: false });
    expect(own.status).toBe(413);
    expect(own.body.overLimit.data.provision).toEqual({
      holder: `user:${a}`,
      source: `project:${p}`,
      resource: vm,
      quantity: 2,
    });
  });

  it("200 concurrent single-unit commissions from members against a cap of 50: exactly 50", async () => {
    const t = await tenant({ customers: 4, limit: 10 });
    const [vm] = t.resources as [string];
    const p = await project(t, t.customers, 50, 1000);
    const answers = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        issue(t, mkProvisions(t.customers[i % 4]!, p, vm, 1), { auto_accept: true }),
      ),
    );
    expect(answers.filter((r) => r.status === 201)).toHaveLength(50);
    expect(answers.filter((r) => r.status === 413)).toHaveLength(150);
    expect((await projectQuotasOf(t, [p]))[p][vm]).toEqual({
      project_limit: 50,
      project_usage: 50,
      project_pending: 0,
    });
    let members = 0;
    for (const u of t.customers) members += (await quotasOf(t, u))[p][vm].usage;
    expect(members).toBe(50);
  });

  it("issue_commission_generic: both formats mixed in one commission, all or nothing across every holder", async () => {
    const t = await tenant({ customers: 2, limit: 10 });
    const [a, b] = t.customers as [string, string];
    const [vm] = t.resources as [string];
    const p = await project(t, [a], 4, 5);
    // user_provisions {(a, p, vm): 1, (b, b, vm): 2}, project_provisions {(p, vm): 1, (b, vm): 2}, plus the spec's dialect.
    const generic = [
      { holder: `user:${a}`, source: `project:${p}`, resource: vm, quantity: 1 },
      { holder: `user:${b}`, source: `project:${b}`, resource: vm, quantity: 2 },
      { holder: `project:${p}`, source: null, resource: vm, quantity: 1 },
      { holder: `project:${b}`, source: null, resource: vm, quantity: 2 },
      { holder: a, source: "system", resource: vm, quantity: 7 },
    ];
    const serial = (await expectOk(issue(t, generic), 201)).serial;
    expect((await quotasOf(t, a)).system[vm]).toEqual({ usage: 7, limit: 10, pending: 7 });
    expect((await projectQuotasOf(t, [p]))[p][vm]).toEqual({
      project_limit: 4,
      project_usage: 1,
      project_pending: 1,
    });
    await expectOk(
      call("POST", `${base}/commissions/${serial}/action`, { token: t.serviceToken, body: { reject: "" } }),
    );
    // A member's provision must be taken from its project's cap too: unpaired, it is refused.
    const unpaired = await issue(t, [{ ...generic[0]!, quantity: 5 }, ...generic.slice(1)]);
    expect(unpaired.status).toBe(400);
    expect(unpaired.body.badRequest.message).toMatch(/members' provisions add up to 5, its own provision/);
    // Refused on the project's cap (4; the member's limit is 5): nothing is held anywhere.
    const refused = await issue(t, [
      { ...generic[0]!, quantity: 5 },
      generic[1]!,
      { ...generic[2]!, quantity: 5 },
      ...generic.slice(3),
    ]);
    expect(refused.status).toBe(413);
    expect(refused.body.overLimit.data.provision).toEqual({
      holder: `project:${p}`,
      source: null,
      resource: vm,
      quantity: 5,
    });
    for (const u of [a, b])
      expect((await quotasOf(t, u)).system[vm]).toEqual({ usage: 0, limit: 10, pending: 0 });
    expect((await quotasOf(t, a))[p][vm]).toMatchObject({ usage: 0, pending: 0, project_usage: 0 });
    expect(await expectOk(call("GET", `${base}/commissions`, { token: t.serviceToken }))).toEqual([]);
  });

  it("issue_resource_reassignment moves a holding from the base project to another", async () => {
    const t = await tenant({ customers: 1, limit: 10 });
    const [u] = t.customers as [string];
    const [vm] = t.resources as [string];
    const p = await project(t, [u], 5, 5);
    await expectOk(
      issue(t, [{ holder: u, source: "system", resource: vm, quantity: 3 }], { auto_accept: true }),
      201,
    );
    // {(from, to, vm): 2}: mk_provisions(u, from, vm, -2) + mk_provisions(u, to, vm, 2).
    const moved = await issue(t, [...mkProvisions(u, u, vm, -2), ...mkProvisions(u, p, vm, 2)], {
      auto_accept: true,
    });
    expect(moved.status).toBe(201);
    const q = await quotasOf(t, u);
    expect(q.system[vm].usage).toBe(1);
    expect(q[p][vm]).toMatchObject({ usage: 2, project_usage: 2 });
    // Moving more than the base project holds: NoQuantityError on the member's holding there.
    const tooMuch = await issue(t, [...mkProvisions(u, u, vm, -2), ...mkProvisions(u, p, vm, 2)]);
    expect(tooMuch.status).toBe(413);
    expect(tooMuch.body.overLimit.data.name).toBe("NoQuantityError");
  });

  it("service_get_project_quotas and service_get_quotas(project=…) answer the partner's projects only", async () => {
    const t = await tenant({ customers: 2, limit: 10 });
    const other = await tenant({ customers: 1 });
    const [a, b] = t.customers as [string, string];
    const [vm] = t.resources as [string];
    const p = await project(t, [a], 5, 3);
    const all = await expectOk(call("GET", `${base}/service_project_quotas`, { token: t.serviceToken }));
    expect(Object.keys(all).sort()).toEqual([a, b, p].sort());
    expect(all[p][vm]).toEqual({ project_limit: 5, project_usage: 0, project_pending: 0 });
    const some = await projectQuotasOf(t, [p, other.customers[0]!]);
    expect(Object.keys(some)).toEqual([p]);
    // A member that is no id matches nothing, as in Astakos.
    const odd = await expectOk(
      call("GET", `${base}/service_project_quotas?project=${p},x`, { token: t.serviceToken }),
    );
    expect(Object.keys(odd)).toEqual([p]);
    const narrowed = await expectOk(
      call("GET", `${base}/service_quotas?user=${a}&project=${p}`, { token: t.serviceToken }),
    );
    expect(Object.keys(narrowed[a])).toEqual([p]);
    const mine = await expectOk(call("GET", `${base}/quotas`, { token: t.userTokens[0] }));
    expect(Object.keys(mine).sort()).toEqual(["system", a, p].sort());
  });

  it("/v1: partners manage their own; members leave with limit 0; a base project has one member", async () => {
    const t = await tenant({ customers: 2, limit: 10 });
    const other = await tenant({ customers: 1 });
    const [a, b] = t.customers as [string, string];
    const [vm] = t.resources as [string];
    const p = await project(t, [a, b], 5, 3);
    const read = await expectOk(call("GET", `/v1/projects/${p}`, { token: t.partnerKey }));
    expect(read).toMatchObject({ id: p, partner: t.partnerId, base: false, members: [a, b].sort() });
    expect((await call("GET", `/v1/projects/${p}`, { token: other.partnerKey })).status).toBe(404);
    expect(
      (
        await call("POST", `/v1/projects/${p}/members`, {
          token: t.partnerKey,
          body: { customer: other.customers[0] },
        })
      ).status,
    ).toBe(404);
    await expectOk(issue(t, mkProvisions(b, p, vm, 2), { auto_accept: true }), 201);
    expect((await call("DELETE", `/v1/projects/${p}/members/${b}`, { token: t.partnerKey })).status).toBe(
      204,
    );
    expect((await quotasOf(t, b))[p][vm]).toMatchObject({ usage: 2, limit: 0 });
    expect((await issue(t, mkProvisions(b, p, vm, 1))).status).toBe(413);
    expect((await issue(t, mkProvisions(b, p, vm, -2), { auto_accept: true })).status).toBe(201);
    expect((await call("DELETE", `/v1/projects/${p}/members/${b}`, { token: t.partnerKey })).status).toBe(
      404,
    );
    const baseProject = await expectOk(call("GET", `/v1/projects/${a}`, { token: t.partnerKey }));
    expect(baseProject).toMatchObject({ id: a, base: true, members: [a] });
    const join = await call("POST", `/v1/projects/${a}/members`, {
      token: t.partnerKey,
      body: { customer: b },
    });
    expect(join.status).toBe(409);
    // A base project's limits are its customer's `system` ones: the operator's to set, never a
    // partner's (it would raise its own customers' limits, `stratus.*` ones included).
    for (const path of [`/v1/projects/${a}/quotas`, `/v1/projects/${a}/members/${a}/quotas`]) {
      for (const resource of [vm, "stratus.ip"]) {
        const raise = await call("PUT", path, { token: t.partnerKey, body: { resource, limit: 100_000 } });
        expect(raise.status, `${path} ${resource}`).toBe(403);
      }
    }
    // A base project's own limit is its customer's `system` limit.
    const set = await expectOk(
      call("PUT", `/v1/projects/${a}/quotas`, { token: t.operator, body: { resource: vm, limit: 7 } }),
    );
    expect(set).toEqual({
      holder: `project:${a}`,
      source: null,
      resource: vm,
      limit: 7,
      usage: 0,
      pending: 0,
    });
    expect((await quotasOf(t, a)).system[vm].limit).toBe(7);
    const unknown = await call("PUT", `/v1/projects/${p}/quotas`, {
      token: t.partnerKey,
      body: { resource: "nope.vm", limit: 1 },
    });
    expect(unknown.status).toBe(404);
  });

  it("/v1: a project takes limits only on resources allowed in projects, never on stratus's own", async () => {
    const t = await tenant({ customers: 1, limit: 10 });
    const [a] = t.customers as [string];
    const p = await project(t, [a], 5, 3);
    const disk = `${t.serviceName}.disk`;
    await expectOk(
      call("PUT", `/v1/resources/${disk}`, {
        token: t.operator,
        body: { service: t.serviceName, allow_in_projects: false },
      }),
    );
    for (const path of [`/v1/projects/${p}/quotas`, `/v1/projects/${p}/members/${a}/quotas`]) {
      const refused = await call("PUT", path, { token: t.partnerKey, body: { resource: disk, limit: 5 } });
      expect(refused.status, path).toBe(400);
      expect(refused.body.errors).toEqual([
        { point: "/resource", message: expect.stringContaining("projects") },
      ]);
    }
    await expectOk(
      call("PUT", `/v1/resources/stratus.${t.serviceName}`, {
        token: t.operator,
        body: { service: "stratus" },
      }),
    );
    const own = await call("PUT", `/v1/projects/${p}/quotas`, {
      token: t.partnerKey,
      body: { resource: `stratus.${t.serviceName}`, limit: 5 },
    });
    expect(own.status).toBe(400);
    // A customer's base project is its `system`: any resource is set there.
    await expectOk(
      call("PUT", `/v1/projects/${a}/quotas`, { token: t.operator, body: { resource: disk, limit: 2 } }),
    );
    expect((await quotasOf(t, a)).system[disk]).toMatchObject({ limit: 2 });
  });
});

describe("answers in ASCII only, as Astakos's json.dumps writes them", () => {
  // The client parses every body with `simplejson.loads(unicode(data))`: under Python 2, unicode()
  // of a byte string decodes it as ASCII, so one raw UTF-8 byte fails the whole answer.
  const ascii = /^[^\u0080-\uffff]*$/;
  const name = "Γιώργος Müller 🌩";

  it("a customer's name in authenticate() and get_endpoints(), a commission's name, a message echoing the input", async () => {
    const t = await tenant({ customers: 1 });
    const [a] = t.customers as [string];
    const c = await expectOk(call("POST", "/v1/customers", { token: t.partnerKey, body: { name } }), 201);
    const user = await expectOk(
      call("POST", `/v1/customers/${c.id}/tokens`, { token: t.partnerKey, body: {} }),
      201,
    );
    const authenticated = await call("POST", "/identity/v2.0/tokens", {
      headers: { "x-auth-token": user.token },
      body: { auth: { token: { id: user.token } } },
    });
    const endpoints = await call("POST", "/identity/v2.0/tokens", {
      headers: { "content-type": "application/json", "x-auth-token": user.token },
    });
    for (const r of [authenticated, endpoints]) {
      expect(r.status).toBe(200);
      expect(r.text).toMatch(ascii);
      expect(r.body.access.user.name).toBe(name);
    }

    const { serial } = await expectOk(
      call("POST", `${base}/commissions`, {
        token: t.serviceToken,
        body: {
          name,
          provisions: [{ holder: a, source: "system", resource: t.resources[0], quantity: 1 }],
        },
      }),
      201,
    );
    const info = await call("GET", `${base}/commissions/${serial}`, { token: t.serviceToken });
    expect(info.text).toMatch(ascii);
    expect(info.body.name).toBe(name);

    const refused = await call("POST", `${base}/commissions`, {
      token: t.serviceToken,
      body: { provisions: [{ holder: a, source: "system", resource: `${t.serviceName}.é`, quantity: 1 }] },
    });
    expect(refused.status).toBe(404);
    expect(refused.text).toMatch(ascii);
    expect(refused.body.itemNotFound.data.provision.resource).toBe(`${t.serviceName}.é`);
  });
});

describe("a user's holding with no source", () => {
  it("does not exist: 404 itemNotFound with data.name NoHoldingError, as Astakos answers it, in either dialect", async () => {
    const t = await tenant({ customers: 1 });
    const [a] = t.customers as [string];
    for (const holder of [a, `user:${a}`]) {
      const provision = { holder, source: null, resource: t.resources[0], quantity: 1 };
      const r = await call("POST", `${base}/commissions`, {
        token: t.serviceToken,
        body: { provisions: [provision] },
      });
      expect(r.status, holder).toBe(404);
      expect(r.body.itemNotFound.data).toEqual({ provision, name: "NoHoldingError" });
    }
    expect(await expectOk(call("GET", `${base}/commissions`, { token: t.serviceToken }))).toEqual([]);
  });
});

describe("issue_one_commission(a, {(b's base project, r): q}): a user in another customer's base project", () => {
  it("holds nothing there: 404 NoHoldingError naming the member's provision, as Astakos answers a non-member", async () => {
    const t = await tenant({ customers: 2 });
    const [a, b] = t.customers as [string, string];
    const resource = t.resources[0]!;
    // mk_provisions(a, b, r, 1): the member's provision, then the project's own.
    const member = { holder: `user:${a}`, source: `project:${b}`, resource, quantity: 1 };
    const own = { holder: `project:${b}`, source: null, resource, quantity: 1 };
    // issue_resource_reassignment(a, {(b, a, r): 1}): out of b's base project into a's own.
    const reassigned = [
      { ...member, quantity: -1 },
      { ...own, quantity: -1 },
      { holder: `user:${a}`, source: `project:${a}`, resource, quantity: 1 },
      { holder: `project:${a}`, source: null, resource, quantity: 1 },
    ];
    for (const [provisions, blamed] of [
      [[member, own], member],
      [reassigned, reassigned[0]],
    ] as const) {
      const r = await call("POST", `${base}/commissions`, {
        token: t.serviceToken,
        body: { name: "", force: false, auto_accept: true, provisions },
      });
      expect(r.status).toBe(404);
      expect(r.body.itemNotFound.data).toEqual({ provision: blamed, name: "NoHoldingError" });
    }
    const quotas = await expectOk(
      call("GET", `${base}/service_quotas?user=${a},${b}`, { token: t.serviceToken }),
    );
    expect(quotas[a].system[resource]).toMatchObject({ usage: 0, pending: 0 });
    expect(quotas[b].system[resource]).toMatchObject({ usage: 0, pending: 0 });
  });
});
