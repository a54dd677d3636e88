import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { findCredential } from "../../src/db/credentials";
import { hashSecret, parseToken } from "../../src/domain/credentials";
import { routes } from "../../src/http/routes";
import { call, deref, expectOk, operatorToken, tenant, tenantWithCatalog, unique, usageOf } from "../helpers";

/** Operator and partner endpoints under /v1, auth, problem+json errors, and the OpenAPI document. */

const problem = (status: number) => ({
  type: expect.stringMatching(/^https:\/\/stratus\.dev\/problems\//),
  title: expect.any(String),
  status,
  detail: expect.any(String),
  instance: expect.any(String),
  request_id: expect.any(String),
});

describe("credentials", () => {
  it("stores only a SHA-256 hash of the secret and shows the token once", async () => {
    const operator = await operatorToken();
    const partner = await expectOk(
      call("POST", "/v1/partners", { token: operator, body: { name: "Acme" } }),
      201,
    );
    const key = await expectOk(
      call("POST", `/v1/partners/${partner.id}/api-keys`, { token: operator, body: { label: "ci" } }),
      201,
    );
    expect(key).toEqual({
      id: expect.any(String),
      role: "partner",
      token: expect.any(String),
      created_at: expect.any(String),
    });
    const parsed = parseToken(key.token)!;
    const stored = (await findCredential(env, parsed.id))!;
    expect(stored.secretHash).toBe(await hashSecret(parsed.secret));
    expect(JSON.stringify(stored)).not.toContain(parsed.secret);
    const again = await call("GET", `/v1/partners/${partner.id}`, { token: operator });
    expect(again.text).not.toContain(parsed.secret);
  });

  it("accepts the key as X-Api-Key or as a bearer token", async () => {
    const t = await tenant({ customers: 0 });
    const viaHeader = await call("GET", "/v1/customers", { token: t.partnerKey });
    expect(viaHeader.status).toBe(200);
    const viaBearer = await call("GET", "/v1/customers", {
      headers: { authorization: `Bearer ${t.partnerKey}` },
    });
    expect(viaBearer.status).toBe(200);
  });

  it.each([
    ["no credentials", {}],
    ["a malformed key", { token: "garbage" }],
    ["an unknown key", { token: "pk.00000000-0000-7000-8000-000000000000.aaaaaaaaaaaaaaaaaaaaaaaaaaaa" }],
  ])("answers 401 problem+json for %s", async (_, options) => {
    const r = await call("GET", "/v1/customers", options);
    expect(r.status).toBe(401);
    expect(r.headers.get("content-type")).toBe("application/problem+json");
    expect(r.body).toEqual(problem(401));
  });

  it("rejects a right id with a wrong secret, and a token presented as another role", async () => {
    const t = await tenant({ customers: 0 });
    const parsed = parseToken(t.partnerKey)!;
    const wrongSecret = `pk.${parsed.id}.${"x".repeat(parsed.secret.length)}`;
    expect((await call("GET", "/v1/customers", { token: wrongSecret })).status).toBe(401);
    const asOperator = `op.${parsed.id}.${parsed.secret}`;
    expect((await call("GET", "/v1/customers", { token: asOperator })).status).toBe(401);
    const serviceOnV1 = await call("GET", "/v1/customers", { token: t.serviceToken });
    expect(serviceOnV1.status).toBe(403);
  });

  it("checks the secret on every request, also after the right one was accepted", async () => {
    const t = await tenant({ customers: 0 });
    const parsed = parseToken(t.partnerKey)!;
    const status = async (token: string) => (await call("GET", "/v1/customers", { token })).status;
    expect(await status(t.partnerKey)).toBe(200);
    const flipped = `${parsed.secret.slice(0, -1)}${parsed.secret.endsWith("A") ? "B" : "A"}`;
    expect(await status(`pk.${parsed.id}.${flipped}`)).toBe(401);
    expect(await status(`pk.${parsed.id}.${parsed.secret}x`)).toBe(401);
    expect(await status(`pk.${parsed.id}.${parsed.secret.slice(0, -1)}`)).toBe(401);
    expect(await status(t.partnerKey)).toBe(200);
  });

  it("keeps operator endpoints from partners (403)", async () => {
    const t = await tenant({ customers: 1 });
    const attempts = [
      call("POST", "/v1/partners", { token: t.partnerKey, body: { name: "x" } }),
      call("POST", `/v1/partners/${t.partnerId}/api-keys`, { token: t.partnerKey, body: {} }),
      call("POST", "/v1/services", { token: t.partnerKey, body: { partner: t.partnerId, name: "x" } }),
      call("PUT", "/v1/resources/x.y", { token: t.partnerKey, body: { service: "x" } }),
      call("PUT", `/v1/customers/${t.customers[0]}/quotas`, {
        token: t.partnerKey,
        body: { resource: t.resources[0], limit: 1000 },
      }),
    ];
    for (const r of await Promise.all(attempts)) {
      expect(r.status).toBe(403);
      expect(r.body).toEqual(problem(403));
    }
    const q = await expectOk(call("GET", "/account/v1.0/quotas", { token: t.userTokens[0] }));
    expect(q.system[t.resources[0]!].limit).toBe(10);
  });
});

describe("customers", () => {
  it("a partner creates, reads and lists its own customers; another partner's are 404", async () => {
    const a = await tenant({ customers: 0 });
    const b = await tenant({ customers: 1 });
    const created = await call("POST", "/v1/customers", {
      token: a.partnerKey,
      body: { name: "Demo Customer", email: "customer@example.org" },
    });
    expect(created.status).toBe(201);
    expect(created.headers.get("location")).toBe(`/v1/customers/${created.body.id}`);
    expect(created.body).toEqual({
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      partner: a.partnerId,
      name: "Demo Customer",
      email: "customer@example.org",
      user_name: null,
      phone: null,
      address: null,
      created_at: expect.any(String),
    });
    expect(await expectOk(call("GET", `/v1/customers/${created.body.id}/`, { token: a.partnerKey }))).toEqual(
      created.body,
    );
    const list = await expectOk(call("GET", "/v1/customers", { token: a.partnerKey }));
    expect(list).toEqual({ objects: [created.body], meta: { limit: 50, next_cursor: null, total_count: 1 } });

    const foreign = b.customers[0]!;
    for (const [method, path, body] of [
      ["GET", `/v1/customers/${foreign}`, undefined],
      ["GET", `/v1/customers/${foreign}/quotas`, undefined],
      ["POST", `/v1/customers/${foreign}/tokens`, {}],
    ] as const) {
      const r = await call(method, path, { token: a.partnerKey, ...(body ? { body } : {}) });
      expect(r.status).toBe(404);
      expect(r.body).toEqual(problem(404));
    }
  });

  it("pages through customers with a cursor", async () => {
    const t = await tenant({ customers: 5 });
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: any = await expectOk(
        call("GET", `/v1/customers?limit=2${cursor ? `&cursor=${cursor}` : ""}`, { token: t.partnerKey }),
      );
      expect(page.objects.length).toBeLessThanOrEqual(2);
      seen.push(...page.objects.map((c: { id: string }) => c.id));
      cursor = page.meta.next_cursor;
    } while (cursor);
    expect(seen).toEqual([...t.customers].sort());
  });

  it("answers 400 problems with field pointers and writes nothing", async () => {
    const t = await tenant({ customers: 0 });
    const cases: Array<[unknown, string]> = [
      [{}, "/name"],
      [{ name: "" }, "/name"],
      [{ name: 5 }, "/name"],
      [{ name: "x", email: "not-an-email" }, "/email"],
      [{ name: "x", partner: "00000000-0000-7000-8000-000000000000" }, "/partner"],
      // A misspelt member is refused, not dropped: the e-mail would be lost unseen.
      [{ name: "x", emial: "customer@example.org" }, "/emial"],
    ];
    for (const [body, point] of cases) {
      const r = await call("POST", "/v1/customers", { token: t.partnerKey, body });
      expect(r.status).toBe(400);
      expect(r.body).toMatchObject({
        ...problem(400),
        errors: expect.arrayContaining([expect.objectContaining({ point })]),
      });
    }
    for (const raw of ["{", "[]", "null", ""]) {
      expect((await call("POST", "/v1/customers", { token: t.partnerKey, raw })).status).toBe(400);
    }
    const badQuery = await call("GET", "/v1/customers?limit=501", { token: t.partnerKey });
    expect(badQuery.status).toBe(400);
    expect(badQuery.body.errors[0].point).toBe("/limit");
    expect((await call("GET", "/v1/customers?cursor=%%%", { token: t.partnerKey })).status).toBe(400);
    const list = await expectOk(call("GET", "/v1/customers", { token: t.partnerKey }));
    expect(list.objects).toEqual([]);
  });

  it("an operator must name the partner", async () => {
    const operator = await operatorToken();
    const r = await call("POST", "/v1/customers", { token: operator, body: { name: "x" } });
    expect(r.status).toBe(400);
    expect(r.body.errors).toEqual([{ point: "/partner", message: "is required" }]);
  });

  it("refuses a member a project or a key does not read, creating nothing", async () => {
    const t = await tenant({ customers: 1 });
    const project = await call("POST", "/v1/projects", {
      token: t.partnerKey,
      body: { name: "p", nmae: "q" },
    });
    expect(project.status).toBe(400);
    expect(project.body.errors).toEqual([expect.objectContaining({ point: "/nmae" })]);
    const key = await call("POST", `/v1/customers/${t.customers[0]}/api-keys`, {
      token: t.partnerKey,
      body: { label: "k", lable: "k" },
    });
    expect(key.status).toBe(400);
    expect(key.body.errors).toEqual([expect.objectContaining({ point: "/lable" })]);
    const projects = await env.DB.prepare("SELECT count(*) AS n FROM projects WHERE partner_id = ?")
      .bind(t.partnerId)
      .first<{ n: number }>();
    expect(projects?.n).toBe(0);
  });
});

describe("the operator's and the partner's other bodies", () => {
  it("refuse a misspelt member with 400 naming it, and change nothing", async () => {
    const t = await tenant({ customers: 1 });
    const [c] = t.customers as [string];
    const product = unique("typo");
    const vendor = await expectOk(
      call("POST", "/v1/vendors", { token: t.operator, body: { name: "V" } }),
      201,
    );
    const project = await expectOk(
      call("POST", "/v1/projects", { token: t.partnerKey, body: { name: "p" } }),
      201,
    );
    const productBody = {
      name: "Disk",
      kind: "timed",
      unit: "GB",
      unit_price: "0.10",
      currency: "EUR",
      quota_resource: `stratus.${product}`,
    };
    const cases: Array<[string, string, string, Record<string, unknown>, string]> = [
      ["POST", "/v1/partners", t.operator, { name: "x", rate_limt: "raised" }, "/rate_limt"],
      ["POST", "/v1/services", t.operator, { partner: t.partnerId, name: unique("s"), nmae: "y" }, "/nmae"],
      [
        "PUT",
        `/v1/resources/stratus.${product}`,
        t.operator,
        { service: "stratus", alow_in_projects: false },
        "/alow_in_projects",
      ],
      [
        "PUT",
        `/v1/customers/${c}/quotas`,
        t.operator,
        { sorce: "system", resource: t.resources[0] as string, limit: 3 },
        "/sorce",
      ],
      ["POST", "/v1/vendors", t.operator, { name: "W", endpiont: "https://w.example/" }, "/endpiont"],
      [
        "PUT",
        `/v1/projects/${project.id}/quotas`,
        t.partnerKey,
        { resource: t.resources[0] as string, limit: 3, limt: 4 },
        "/limt",
      ],
      ["POST", `/v1/projects/${project.id}/members`, t.partnerKey, { customer: c, role: "admin" }, "/role"],
      [
        "POST",
        `/v1/customers/${c}/consumption`,
        t.partnerKey,
        { resource: "tx", amount: 1, ammount: 2 },
        "/ammount",
      ],
    ];
    for (const [method, path, token, body, point] of cases) {
      const r = await call(method, path, { token, body });
      expect(r.status, `${method} ${path}: ${r.text}`).toBe(400);
      expect(r.body.errors, path).toEqual([expect.objectContaining({ point })]);
    }
    const resources = await expectOk(call("GET", "/v1/resources", { token: t.operator }));
    expect(resources.objects.map((r: { name: string }) => r.name)).not.toContain(`stratus.${product}`);
    const holdings = await expectOk(call("GET", `/v1/customers/${c}/quotas`, { token: t.operator }));
    expect(holdings.objects.find((h: { resource: string }) => h.resource === t.resources[0])?.limit).not.toBe(
      3,
    );
    expect(
      (await expectOk(call("GET", `/v1/projects/${project.id}`, { token: t.partnerKey }))).members ?? [],
    ).toEqual([]);

    // A product: a misspelt `delivry` would have left it built in, its vendor never told of a sale.
    await expectOk(
      call("PUT", `/v1/resources/stratus.${product}`, { token: t.operator, body: { service: "stratus" } }),
    );
    const typo = await call("PUT", `/v1/products/${product}`, {
      token: t.operator,
      body: { ...productBody, delivry: "syndicated", vendor: vendor.id, endpoint: "https://v.example/hooks" },
    });
    expect(typo.status).toBe(400);
    expect(typo.body.errors).toEqual([expect.objectContaining({ point: "/delivry" })]);
    expect((await call("GET", `/v1/products/${product}`, { token: t.operator })).status).toBe(404);
    // Its read sent back as it came (`id` included) is taken; another id is not.
    const created = await expectOk(
      call("PUT", `/v1/products/${product}`, { token: t.operator, body: productBody }),
    );
    const { signing_secret: _, ...asRead } = created;
    expect(
      await expectOk(call("PUT", `/v1/products/${product}`, { token: t.operator, body: asRead })),
    ).toEqual(asRead);
    const other = await call("PUT", `/v1/products/${product}`, {
      token: t.operator,
      body: { ...asRead, id: "another" },
    });
    expect(other.status).toBe(400);
    expect(other.body.errors).toEqual([expect.objectContaining({ point: "/id" })]);
  });
});

describe("a customer's limit", () => {
  it("is on its base project whichever name the source gives it; any other source answers 400", async () => {
    const t = await tenant({ customers: 1 });
    const [c] = t.customers as [string];
    const vm = t.resources[0] as string;
    const set = (source: string, limit: number) =>
      call("PUT", `/v1/customers/${c}/quotas`, { token: t.operator, body: { source, resource: vm, limit } });
    for (const [source, limit] of [
      [c, 9],
      [`project:${c}`, 8],
      ["system", 7],
    ] as const) {
      expect(await expectOk(set(source, limit))).toMatchObject({ source: "system", limit });
    }
    const holdings = await expectOk(call("GET", `/v1/customers/${c}/quotas`, { token: t.operator }));
    expect(holdings.objects.filter((h: { resource: string }) => h.resource === vm)).toEqual([
      expect.objectContaining({ source: "system", limit: 7 }),
    ]);
    // A project's member limits are the project's to set; a free-form name would be a hidden holding.
    const elsewhere = await expectOk(
      call("POST", "/v1/projects", { token: t.partnerKey, body: { name: "elsewhere" } }),
      201,
    );
    for (const source of [`project:${elsewhere.id}`, "System", "null"]) {
      const r = await set(source, 5);
      expect(r.status, source).toBe(400);
      expect(r.body.errors).toEqual([{ point: "/source", message: expect.any(String) }]);
    }
  });
});

describe("revoking a credential", () => {
  it("stops it authenticating at once; a partner revokes only its own, the operator any", async () => {
    const t = await tenant({ customers: 1 });
    const other = await tenant({ customers: 0 });
    const key = await expectOk(
      call("POST", `/v1/partners/${t.partnerId}/api-keys`, { token: t.operator, body: { label: "leaked" } }),
      201,
    );
    expect((await call("GET", "/v1/customers", { token: key.token })).status).toBe(200);

    expect((await call("DELETE", `/v1/credentials/${key.id}`, { token: other.partnerKey })).status).toBe(404);
    expect((await call("GET", "/v1/customers", { token: key.token })).status).toBe(200);

    const revoked = await expectOk(call("DELETE", `/v1/credentials/${key.id}`, { token: t.partnerKey }));
    expect(revoked).toEqual({
      id: key.id,
      role: "partner",
      label: "leaked",
      created_at: key.created_at,
      revoked_at: expect.any(String),
    });
    expect((await call("GET", "/v1/customers", { token: key.token })).status).toBe(401);
    const again = await expectOk(call("DELETE", `/v1/credentials/${key.id}`, { token: t.partnerKey }));
    expect(again.revoked_at).toBe(revoked.revoked_at);
    expect((await call("GET", "/v1/customers", { token: t.partnerKey })).status).toBe(200);

    const service = t.serviceToken.split(".")[1] as string;
    expect((await call("GET", "/account/v1.0/commissions", { token: t.serviceToken })).status).toBe(200);
    await expectOk(call("DELETE", `/v1/credentials/${service}`, { token: t.operator }));
    expect((await call("GET", "/account/v1.0/commissions", { token: t.serviceToken })).status).toBe(401);
    expect((await call("DELETE", `/v1/credentials/${service}x`, { token: t.operator })).status).toBe(404);
  });
});

describe("catalog and limits", () => {
  it("keeps a resource with its service: stratus's own cannot be handed to a service that would release them", async () => {
    const t = await tenantWithCatalog(1, 10);
    const bought = await expectOk(
      call("POST", "/v1/subscriptions/", {
        token: t.partnerKey,
        body: { objects: [{ customer: t.customers[0], resource: "cpu", amount: 4, period: "1 week" }] },
      }),
      201,
    );
    expect(bought.objects).toHaveLength(1);
    const moved = await call("PUT", "/v1/resources/stratus.cpu", {
      token: t.operator,
      body: { service: t.serviceName, unit: "GHz" },
    });
    expect(moved.status).toBe(400);
    expect(moved.body.errors).toEqual([{ point: "/service", message: expect.stringContaining("stratus") }]);
    const fresh = await call("PUT", `/v1/resources/stratus.${unique("x")}`, {
      token: t.operator,
      body: { service: t.serviceName },
    });
    expect(fresh.status).toBe(400);
    // A service's resource keeps its service too.
    const taken = await call("PUT", `/v1/resources/${t.serviceName}.vm`, {
      token: t.operator,
      body: { service: "stratus" },
    });
    expect(taken.status).toBe(409);
    // So the service cannot release what the subscription holds.
    const release = await call("POST", "/account/v1.0/commissions", {
      token: t.serviceToken,
      body: {
        auto_accept: true,
        provisions: [{ holder: t.customers[0], source: "system", resource: "stratus.cpu", quantity: -4 }],
      },
    });
    expect(release.status).toBe(400);
    expect(await usageOf(t, 0, "cpu")).toMatchObject({ usage: 4, pending: 0 });
  });

  it("registers resources idempotently and sets limits on registered resources only", async () => {
    const t = await tenant({ customers: 1 });
    const name = `${t.serviceName}.disk`;
    const body = { unit: "bytes", description: "Disk", service: t.serviceName, allow_in_projects: false };
    const first = await expectOk(call("PUT", `/v1/resources/${name}`, { token: t.operator, body }));
    const second = await expectOk(call("PUT", `/v1/resources/${name}`, { token: t.operator, body }));
    expect(second).toEqual(first);
    expect(first).toEqual({ name, ...body });

    const set = await expectOk(
      call("PUT", `/v1/customers/${t.customers[0]}/quotas`, {
        token: t.operator,
        body: { source: "system", resource: name, limit: 1 << 30 },
      }),
    );
    expect(set).toEqual({
      holder: t.customers[0],
      source: "system",
      resource: name,
      limit: 1 << 30,
      usage: 0,
      pending: 0,
    });
    const unknown = await call("PUT", `/v1/customers/${t.customers[0]}/quotas`, {
      token: t.operator,
      body: { resource: "no.such", limit: 1 },
    });
    expect(unknown.status).toBe(404);
    for (const limit of [-1, 1.5, "3", 2 ** 60]) {
      const r = await call("PUT", `/v1/customers/${t.customers[0]}/quotas`, {
        token: t.operator,
        body: { resource: name, limit },
      });
      expect(r.status).toBe(400);
    }
    const holdings = await expectOk(
      call("GET", `/v1/customers/${t.customers[0]}/quotas`, { token: t.partnerKey }),
    );
    expect(holdings.objects.find((h: { resource: string }) => h.resource === name).limit).toBe(1 << 30);
  });

  it("a service name is unique per partner", async () => {
    const t = await tenant({ customers: 0 });
    const r = await call("POST", "/v1/services", {
      token: t.operator,
      body: { partner: t.partnerId, name: t.serviceName },
    });
    expect(r.status).toBe(409);
    const missing = await call("POST", "/v1/services", {
      token: t.operator,
      body: { partner: "00000000-0000-7000-8000-000000000000", name: unique("s") },
    });
    expect(missing.status).toBe(404);
  });
});

describe("routing, OpenAPI and docs", () => {
  it("answers 404 and 405 as problems, and accepts a trailing slash", async () => {
    const t = await tenant({ customers: 0 });
    const missing = await call("GET", "/v1/nothing-here", { token: t.partnerKey });
    expect(missing.status).toBe(404);
    expect(missing.body).toEqual(problem(404));
    const wrongMethod = await call("DELETE", "/v1/customers", { token: t.partnerKey });
    expect(wrongMethod.status).toBe(405);
    expect((await call("GET", "/v1/customers/", { token: t.partnerKey })).status).toBe(200);
    expect((await call("GET", "/v1/customers/not-a-uuid", { token: t.partnerKey })).status).toBe(404);
  });

  it("describes every route in /openapi.json, with request schemas from the validators", async () => {
    const doc = await expectOk(call("GET", "/openapi.json"));
    expect(doc.openapi).toBe("3.1.0");
    for (const route of routes) {
      expect(
        doc.paths[route.path]?.[route.method.toLowerCase()],
        `${route.method} ${route.path}`,
      ).toBeDefined();
    }
    const issue = doc.paths["/account/v1.0/commissions"].post;
    expect(deref(doc, issue.requestBody.content["application/json"].schema).required).toEqual(["provisions"]);
    expect(issue.security).toEqual([{ authToken: [] }]);
    const limit = doc.paths["/v1/customers"].get.parameters.find((p: { name: string }) => p.name === "limit");
    expect(limit).toMatchObject({
      in: "query",
      required: false,
      schema: { type: "integer", minimum: 0, maximum: 500, default: 50 },
    });
  });

  it("serves /docs as a page that draws /openapi.json with the self-hosted renderer, nothing else", async () => {
    const r = await call("GET", "/docs");
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toContain("text/html");
    // The renderer is the static asset wrangler.toml's [assets] serves; `npm run docs:check` loads
    // the page in Chromium against wrangler dev.
    expect(r.text).toContain('<script src="/docs/scalar.js"></script>');
    const config = JSON.parse(r.text.match(/Scalar\.createApiReference\("#app", (.*)\);<\/script>/)![1]!);
    expect(config).toMatchObject({
      url: "/openapi.json",
      withDefaultFonts: false,
      telemetry: false,
      hideClientButton: true,
    });
    expect(config).not.toHaveProperty("proxyUrl");
    const csp = r.headers.get("content-security-policy")!;
    for (const directive of ["default-src 'self'", "connect-src 'self'", "font-src 'self' data:"]) {
      expect(csp.split("; ")).toContain(directive);
    }
  });
});
