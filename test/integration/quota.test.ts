import { describe, expect, it } from "vitest";
import { call, expectOk, type Tenant, tenant } from "../helpers";

/** The quota API (spec/quota-api.rst) through the Worker, with real D1 and QuotaLedger objects. */

const provision = (holder: string, resource: string, quantity: number, source = "system") => ({
  holder,
  source,
  resource,
  quantity,
});

async function issue(t: Tenant, body: unknown) {
  return call("POST", "/account/v1.0/commissions", { token: t.serviceToken, body });
}

async function quotasOf(t: Tenant, index: number) {
  return expectOk(call("GET", "/account/v1.0/quotas", { token: t.userTokens[index] }));
}

async function holding(t: Tenant, index: number, resource: string) {
  const q = await quotasOf(t, index);
  return q.system[resource] as { usage: number; limit: number; pending: number };
}

describe("resources", () => {
  it("lists registered resources keyed by name, without authentication", async () => {
    const t = await tenant({ customers: 0 });
    const r = await call("GET", "/account/v1.0/resources");
    expect(r.status).toBe(200);
    expect(r.body[t.resources[0]!]).toEqual({
      unit: null,
      description: "",
      service: t.serviceName,
      allow_in_projects: true,
    });
  });
});

describe("quotas and service_quotas", () => {
  it("answers a user's quotas by source and resource, its base project also under its id", async () => {
    const t = await tenant({ customers: 1, limit: 5 });
    const q = await quotasOf(t, 0);
    const base = { project_limit: 5, project_usage: 0, project_pending: 0 };
    expect(q).toEqual({
      system: {
        [t.resources[0]!]: { usage: 0, limit: 5, pending: 0 },
        [t.resources[1]!]: { usage: 0, limit: 5, pending: 0 },
      },
      [t.customers[0]!]: {
        [t.resources[0]!]: { usage: 0, limit: 5, pending: 0, ...base },
        [t.resources[1]!]: { usage: 0, limit: 5, pending: 0, ...base },
      },
    });
  });

  it("answers 401 with a cloudFault for a missing, unknown or wrong-kind token", async () => {
    const t = await tenant({ customers: 1 });
    for (const token of [undefined, "usr.nope.nopenopenopenopenope", t.serviceToken, t.partnerKey]) {
      const r = await call("GET", "/account/v1.0/quotas", token ? { token } : {});
      expect(r.status).toBe(401);
      expect(r.body).toEqual({ unauthorized: { message: expect.any(String), code: 401 } });
    }
    const r = await call("GET", "/account/v1.0/service_quotas", { token: t.userTokens[0] });
    expect(r.status).toBe(401);
  });

  it("answers a service the quotas of its partner's holders, or of one user", async () => {
    const t = await tenant({ customers: 2, limit: 3 });
    const other = await tenant({ customers: 1 });
    const all = await expectOk(call("GET", "/account/v1.0/service_quotas", { token: t.serviceToken }));
    expect(Object.keys(all).sort()).toEqual([...t.customers].sort());
    expect(all[t.customers[0]!].system[t.resources[0]!]).toEqual({ usage: 0, limit: 3, pending: 0 });
    expect(all[other.customers[0]!]).toBeUndefined();

    const one = await expectOk(
      call("GET", `/account/v1.0/service_quotas?user=${t.customers[1]}`, { token: t.serviceToken }),
    );
    expect(Object.keys(one)).toEqual([t.customers[1]]);
    // A user not the partner's is no holder of this service's: Astakos's 404 (quotas.py), which
    // its callers (Pithos's reconcile) take for "does not exist".
    const stranger = await call("GET", `/account/v1.0/service_quotas?user=${other.customers[0]}`, {
      token: t.serviceToken,
    });
    expect(stranger.status).toBe(404);
    expect(stranger.body).toEqual({
      itemNotFound: { message: `No user with UUID '${other.customers[0]}'`, code: 404 },
    });
    const projects = await call(
      "GET",
      `/account/v1.0/service_project_quotas?project=${other.customers[0]},${other.customers[0]}`,
      { token: t.serviceToken },
    );
    expect(projects.status).toBe(404);
    expect(projects.body.itemNotFound.message).toBe(`No project with UUID '${other.customers[0]}'`);
    const odd = await call("GET", "/account/v1.0/service_quotas?user=not-a-uuid", { token: t.serviceToken });
    expect(odd.status).toBe(404);
    expect(odd.body).toEqual({ itemNotFound: { message: "No user with UUID 'not-a-uuid'", code: 404 } });
  });
});

describe("issuing commissions", () => {
  it("issues the spec's example, describes it while pending, and accepts it", async () => {
    const t = await tenant({ customers: 1, limit: 1 << 30 });
    const [holder] = t.customers as [string];
    const [vm, ram] = t.resources as [string, string];
    const body = {
      force: false,
      auto_accept: false,
      name: "an optional description",
      provisions: [provision(holder, vm, 1), provision(holder, ram, 536870912)],
    };
    const r = await issue(t, body);
    expect(r.status).toBe(201);
    expect(r.body).toEqual({ serial: expect.any(Number) });
    const serial = r.body.serial as number;

    expect(await holding(t, 0, ram)).toEqual({ usage: 536870912, limit: 1 << 30, pending: 536870912 });
    expect(await expectOk(call("GET", "/account/v1.0/commissions", { token: t.serviceToken }))).toEqual([
      serial,
    ]);

    const described = await expectOk(
      call("GET", `/account/v1.0/commissions/${serial}`, { token: t.serviceToken }),
    );
    expect(described).toEqual({
      serial,
      issue_time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d/),
      name: "an optional description",
      provisions: body.provisions,
    });

    const accepted = await call("POST", `/account/v1.0/commissions/${serial}/action`, {
      token: t.serviceToken,
      body: { accept: "" },
    });
    expect(accepted.status).toBe(200);
    expect(await holding(t, 0, ram)).toEqual({ usage: 536870912, limit: 1 << 30, pending: 0 });
    expect(await expectOk(call("GET", "/account/v1.0/commissions", { token: t.serviceToken }))).toEqual([]);
    const gone = await call("GET", `/account/v1.0/commissions/${serial}`, { token: t.serviceToken });
    expect(gone.status).toBe(404);
    expect(gone.body).toEqual({ itemNotFound: { message: `serial ${serial} does not exist`, code: 404 } });
  });

  it("rejecting undoes the issue", async () => {
    const t = await tenant({ customers: 1, limit: 4 });
    const { serial } = await expectOk(
      issue(t, { provisions: [provision(t.customers[0]!, t.resources[0]!, 3)] }),
      201,
    );
    expect(await holding(t, 0, t.resources[0]!)).toEqual({ usage: 3, limit: 4, pending: 3 });
    await expectOk(
      call("POST", `/account/v1.0/commissions/${serial}/action`, {
        token: t.serviceToken,
        body: { reject: "" },
      }),
    );
    expect(await holding(t, 0, t.resources[0]!)).toEqual({ usage: 0, limit: 4, pending: 0 });
  });

  it("answers overLimit with the provision, NoCapacityError, limit and usage, and changes nothing", async () => {
    const t = await tenant({ customers: 1, limit: 2 });
    const [holder] = t.customers as [string];
    const vm = t.resources[0]!;
    await expectOk(issue(t, { auto_accept: true, provisions: [provision(holder, vm, 2)] }), 201);
    const p = provision(holder, vm, 1);
    const r = await issue(t, { provisions: [provision(holder, t.resources[1]!, 1), p] });
    expect(r.status).toBe(413);
    expect(r.body).toEqual({
      overLimit: {
        message: expect.any(String),
        code: 413,
        data: { provision: p, name: "NoCapacityError", limit: 2, usage: 2 },
      },
    });
    expect(await holding(t, 0, t.resources[1]!)).toEqual({ usage: 0, limit: 2, pending: 0 });
  });

  it("force bypasses the limit of a positive quantity only", async () => {
    const t = await tenant({ customers: 1, limit: 1 });
    const [holder] = t.customers as [string];
    const vm = t.resources[0]!;
    await expectOk(issue(t, { force: true, auto_accept: true, provisions: [provision(holder, vm, 5)] }), 201);
    expect(await holding(t, 0, vm)).toEqual({ usage: 5, limit: 1, pending: 0 });
    const release = await issue(t, { force: true, provisions: [provision(holder, vm, -6)] });
    expect(release.status).toBe(413);
    expect(release.body.overLimit.data).toEqual({
      name: "NoQuantityError",
      provision: provision(holder, vm, -6),
      // Astakos's: the floor (0) and what is certainly used (usage_min), which 6 would go below.
      limit: 0,
      usage: 5,
    });
  });

  it("releases with a negative quantity: usage_min first, usage_max on accept", async () => {
    const t = await tenant({ customers: 1, limit: 10 });
    const [holder] = t.customers as [string];
    const vm = t.resources[0]!;
    await expectOk(issue(t, { auto_accept: true, provisions: [provision(holder, vm, 4)] }), 201);
    const { serial } = await expectOk(issue(t, { provisions: [provision(holder, vm, -3)] }), 201);
    expect(await holding(t, 0, vm)).toEqual({ usage: 4, limit: 10, pending: 3 });
    await expectOk(
      call("POST", `/account/v1.0/commissions/${serial}/action`, {
        token: t.serviceToken,
        body: { accept: "" },
      }),
    );
    expect(await holding(t, 0, vm)).toEqual({ usage: 1, limit: 10, pending: 0 });
  });

  it("sums provisions of the same holding before checking the limit", async () => {
    const t = await tenant({ customers: 1, limit: 3 });
    const [holder] = t.customers as [string];
    const vm = t.resources[0]!;
    const over = await issue(t, { provisions: [provision(holder, vm, 2), provision(holder, vm, 2)] });
    expect(over.status).toBe(413);
    expect(over.body.overLimit.data.provision).toEqual(provision(holder, vm, 4));
    const { serial } = await expectOk(
      issue(t, { provisions: [provision(holder, vm, 2), provision(holder, vm, 1)] }),
      201,
    );
    const described = await expectOk(
      call("GET", `/account/v1.0/commissions/${serial}`, { token: t.serviceToken }),
    );
    expect(described.provisions).toEqual([provision(holder, vm, 3)]);
  });

  it("answers itemNotFound/NoHoldingError for an unknown holder, source or resource, changing nothing", async () => {
    const t = await tenant({ customers: 1, limit: 3 });
    const other = await tenant({ customers: 1 });
    const [holder] = t.customers as [string];
    const vm = t.resources[0]!;
    const cases = [
      provision("00000000-0000-7000-8000-000000000000", vm, 1),
      provision(other.customers[0]!, other.resources[0]!, 1),
      provision(holder, vm, 1, "project:1"),
      provision(holder, "nope.thing", 1),
    ];
    for (const bad of cases) {
      const r = await issue(t, { provisions: [provision(holder, vm, 1), bad] });
      expect(r.status).toBe(404);
      expect(r.body).toEqual({
        itemNotFound: {
          message: expect.any(String),
          code: 404,
          data: { provision: bad, name: "NoHoldingError" },
        },
      });
    }
    expect(await holding(t, 0, vm)).toEqual({ usage: 0, limit: 3, pending: 0 });
    expect(await expectOk(call("GET", "/account/v1.0/commissions", { token: t.serviceToken }))).toEqual([]);
  });

  it("accepts an empty provisions list as a valid commission", async () => {
    const t = await tenant({ customers: 0 });
    const { serial } = await expectOk(issue(t, { provisions: [] }), 201);
    expect(await expectOk(call("GET", "/account/v1.0/commissions", { token: t.serviceToken }))).toEqual([
      serial,
    ]);
    await expectOk(
      call("POST", `/account/v1.0/commissions/${serial}/action`, {
        token: t.serviceToken,
        body: { accept: "" },
      }),
    );
  });

  it("auto_accept issues and accepts in one step", async () => {
    const t = await tenant({ customers: 1, limit: 3 });
    const { serial } = await expectOk(
      issue(t, { auto_accept: true, provisions: [provision(t.customers[0]!, t.resources[0]!, 2)] }),
      201,
    );
    expect(await holding(t, 0, t.resources[0]!)).toEqual({ usage: 2, limit: 3, pending: 0 });
    expect(await expectOk(call("GET", "/account/v1.0/commissions", { token: t.serviceToken }))).toEqual([]);
    const r = await call("POST", `/account/v1.0/commissions/${serial}/action`, {
      token: t.serviceToken,
      body: { accept: "" },
    });
    expect(r.status).toBe(404);
  });

  it("auto_accept across holders accepts on every ledger and lists nothing", async () => {
    const t = await tenant({ customers: 2, limit: 5 });
    const vm = t.resources[0]!;
    const { serial } = await expectOk(
      issue(t, { auto_accept: true, provisions: t.customers.map((c) => provision(c, vm, 2)) }),
      201,
    );
    for (const i of [0, 1]) expect(await holding(t, i, vm)).toEqual({ usage: 2, limit: 5, pending: 0 });
    expect(await expectOk(call("GET", "/account/v1.0/commissions", { token: t.serviceToken }))).toEqual([]);
    const again = await call("POST", `/account/v1.0/commissions/${serial}/action`, {
      token: t.serviceToken,
      body: { reject: "" },
    });
    expect(again.status).toBe(404);
    for (const i of [0, 1]) expect(await holding(t, i, vm)).toEqual({ usage: 2, limit: 5, pending: 0 });
  });

  it("hands out strictly increasing serials", async () => {
    const t = await tenant({ customers: 1, limit: 100 });
    const serials: number[] = [];
    for (let i = 0; i < 5; i++) {
      serials.push(
        (await expectOk(issue(t, { provisions: [provision(t.customers[0]!, t.resources[0]!, 1)] }), 201))
          .serial,
      );
    }
    expect(serials.every((s, i) => i === 0 || s > serials[i - 1]!)).toBe(true);
  });
});

describe("resolving", () => {
  it("a service sees and resolves only its own commissions", async () => {
    const t = await tenant({ customers: 1 });
    const other = await tenant({ customers: 0 });
    const { serial } = await expectOk(
      issue(t, { provisions: [provision(t.customers[0]!, t.resources[0]!, 1)] }),
      201,
    );
    expect(await expectOk(call("GET", "/account/v1.0/commissions", { token: other.serviceToken }))).toEqual(
      [],
    );
    const peek = await call("GET", `/account/v1.0/commissions/${serial}`, { token: other.serviceToken });
    expect(peek.status).toBe(404);
    const steal = await call("POST", `/account/v1.0/commissions/${serial}/action`, {
      token: other.serviceToken,
      body: { accept: "" },
    });
    expect(steal.status).toBe(404);
    const many = await expectOk(
      call("POST", "/account/v1.0/commissions/action", {
        token: other.serviceToken,
        body: { reject: [serial] },
      }),
    );
    expect(many.failed).toEqual([
      [serial, { itemNotFound: { message: `serial ${serial} does not exist`, code: 404 } }],
    ]);
    expect(await holding(t, 0, t.resources[0]!)).toEqual({ usage: 1, limit: 10, pending: 1 });
  });

  it("a single action needs exactly one of accept and reject", async () => {
    const t = await tenant({ customers: 1 });
    const { serial } = await expectOk(
      issue(t, { provisions: [provision(t.customers[0]!, t.resources[0]!, 1)] }),
      201,
    );
    for (const body of [{}, { accept: "", reject: "" }]) {
      const r = await call("POST", `/account/v1.0/commissions/${serial}/action`, {
        token: t.serviceToken,
        body,
      });
      expect(r.status).toBe(400);
      expect(r.body).toEqual({ badRequest: { message: expect.any(String), code: 400 } });
    }
    expect(await expectOk(call("GET", "/account/v1.0/commissions", { token: t.serviceToken }))).toEqual([
      serial,
    ]);
  });

  it("resolves many as in the spec's example", async () => {
    const t = await tenant({ customers: 1, limit: 100 });
    const p = () => ({ provisions: [provision(t.customers[0]!, t.resources[0]!, 1)] });
    const s56 = (await expectOk(issue(t, p()), 201)).serial as number;
    const s57 = (await expectOk(issue(t, p()), 201)).serial as number;
    const s59 = (await expectOk(issue(t, p()), 201)).serial as number;
    const s58 = s59 + 1000;
    const r = await call("POST", "/account/v1.0/commissions/action", {
      token: t.serviceToken,
      body: { accept: [s56, s57], reject: [s56, s58, s59] },
    });
    expect(r.status).toBe(200);
    expect(r.body).toEqual({
      accepted: [s57],
      rejected: [s59],
      failed: [
        [s56, { badRequest: { message: `cannot both accept and reject serial ${s56}`, code: 400 } }],
        [s58, { itemNotFound: { message: `serial ${s58} does not exist`, code: 404 } }],
      ],
    });
    expect(await expectOk(call("GET", "/account/v1.0/commissions", { token: t.serviceToken }))).toEqual([
      s56,
    ]);
    expect(await holding(t, 0, t.resources[0]!)).toEqual({ usage: 2, limit: 100, pending: 1 });
  });

  it("accepting after the limit was lowered still succeeds", async () => {
    const t = await tenant({ customers: 1, limit: 10 });
    const [holder] = t.customers as [string];
    const vm = t.resources[0]!;
    const { serial } = await expectOk(issue(t, { provisions: [provision(holder, vm, 8)] }), 201);
    await expectOk(
      call("PUT", `/v1/customers/${holder}/quotas`, { token: t.operator, body: { resource: vm, limit: 2 } }),
    );
    await expectOk(
      call("POST", `/account/v1.0/commissions/${serial}/action`, {
        token: t.serviceToken,
        body: { accept: "" },
      }),
    );
    expect(await holding(t, 0, vm)).toEqual({ usage: 8, limit: 2, pending: 0 });
  });
});

describe("consistency", () => {
  it("200 concurrent +1 commissions against a limit of 50: exactly 50 succeed", async () => {
    const t = await tenant({ customers: 1, limit: 50 });
    const body = { auto_accept: true, provisions: [provision(t.customers[0]!, t.resources[0]!, 1)] };
    const replies = await Promise.all(Array.from({ length: 200 }, () => issue(t, body)));
    const codes = replies.map((r) => r.status);
    expect(codes.filter((c) => c === 201)).toHaveLength(50);
    expect(codes.filter((c) => c === 413)).toHaveLength(150);
    expect(await holding(t, 0, t.resources[0]!)).toEqual({ usage: 50, limit: 50, pending: 0 });
  });

  it("a multi-holder commission failing on its second holder leaves the first untouched", async () => {
    const t = await tenant({ customers: 2, limit: 5 });
    const [a, b] = [...t.customers].sort() as [string, string];
    const vm = t.resources[0]!;
    const indexOf = (id: string) => t.customers.indexOf(id);
    const r = await issue(t, { provisions: [provision(a, vm, 3), provision(b, vm, 6)] });
    expect(r.status).toBe(413);
    expect(r.body.overLimit.data.provision).toEqual(provision(b, vm, 6));
    expect(await holding(t, indexOf(a), vm)).toEqual({ usage: 0, limit: 5, pending: 0 });
    expect(await holding(t, indexOf(b), vm)).toEqual({ usage: 0, limit: 5, pending: 0 });
    expect(await expectOk(call("GET", "/account/v1.0/commissions", { token: t.serviceToken }))).toEqual([]);

    const { serial } = await expectOk(
      issue(t, { provisions: [provision(a, vm, 3), provision(b, vm, 4)] }),
      201,
    );
    await expectOk(
      call("POST", `/account/v1.0/commissions/${serial}/action`, {
        token: t.serviceToken,
        body: { accept: "" },
      }),
    );
    expect(await holding(t, indexOf(a), vm)).toEqual({ usage: 3, limit: 5, pending: 0 });
    expect(await holding(t, indexOf(b), vm)).toEqual({ usage: 4, limit: 5, pending: 0 });
  });
});
