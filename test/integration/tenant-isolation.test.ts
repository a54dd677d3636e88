import { env } from "cloudflare:workers";
import { afterAll, describe, expect, it, vi } from "vitest";
import { syndicationOf } from "../../src/db/webhooks";
import { parseToken } from "../../src/domain/credentials";
import {
  basic,
  call,
  eventually,
  expectOk,
  type Reply,
  syndicatedProduct,
  type Tenant,
  tenant,
  unique,
  withCatalog,
} from "../helpers";

/**
 * Tenant isolation, route by route (README, "The API families": "Another tenant's object answers
 * 404, never 403"). Two complete tenants, A and B, are made through the API as the operator and
 * their partners would; then every principal of B (its partner key, its customer-scoped key, its
 * service, its user token, its vendor) names A's ids in paths, bodies, filters and cursors. None
 * reads, counts or changes anything of A's, and A's state reads the same before and after.
 */

// The vendors' endpoints (hosts under `.example`) take every event; set before the tenants are made
// at collection time, where `vendorEndpoints()`'s beforeAll would come too late.
const realFetch = globalThis.fetch;
vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
  const url = new URL(new Request(input as RequestInfo, init).url);
  return url.host.endsWith(".example")
    ? new Response(null, { status: 204 })
    : realFetch(input as RequestInfo, init);
});
afterAll(() => vi.restoreAllMocks());

const base = "/account/v1.0";
const month = () => new Date().toISOString().slice(0, 7);
const idOf = (token: string) => parseToken(token)?.id as string;

interface World {
  t: Tenant;
  /** Customer 0, named so a leak of its name shows. */
  customer: string;
  marker: string;
  account: string;
  project: string;
  sub: string;
  /** The subscription as its partner reads it: what a PUT sends back. */
  subBody: Record<string, unknown>;
  order: string;
  op: string;
  consumeOp: string;
  serial: number;
  vendorId: string;
  vendorToken: string;
  product: string;
  syndSub: string;
  syndOrder: string;
  delivery: string;
}

/** A partner with everything a partner has: customers, keys, a project, purchases, operations, a commission, a vendor. */
async function world({ pending }: { pending: boolean }): Promise<World> {
  const t = await tenant({ customers: 2 });
  await withCatalog(t);
  const [customer, other] = t.customers as [string, string];
  const partner = { token: t.partnerKey };
  const marker = unique("secret-name");
  await expectOk(call("PATCH", `/v1/customers/${customer}`, { ...partner, body: { name: marker } }));
  const account = await expectOk(
    call("POST", `/v1/customers/${customer}/api-keys`, { ...partner, body: { label: "account" } }),
    201,
  );
  const project = await expectOk(
    call("POST", "/v1/projects", { ...partner, body: { name: unique("p") } }),
    201,
  );
  await expectOk(call("POST", `/v1/projects/${project.id}/members`, { ...partner, body: { customer } }));
  await expectOk(
    call("PUT", `/v1/projects/${project.id}/quotas`, {
      ...partner,
      body: { resource: t.resources[0], limit: 50 },
    }),
  );
  await expectOk(
    call("PUT", `/v1/projects/${project.id}/members/${customer}/quotas`, {
      ...partner,
      body: { resource: t.resources[0], limit: 20 },
    }),
  );
  const bought = await expectOk(
    call("POST", "/v1/subscriptions/", {
      ...partner,
      body: { objects: [{ customer, amount: 1, period: "1 month", resource: "cpu" }] },
    }),
    201,
  );
  await expectOk(
    call("POST", "/v1/subscriptions/", {
      ...partner,
      body: { objects: [{ customer: other, amount: 1, period: "1 month", resource: "cpu" }] },
    }),
    201,
  );
  const sub = bought.objects[0];
  const op = await call("POST", `/v1/subscriptions/${sub.id}/action/?do=auto_renew`, {
    ...partner,
    headers: { prefer: "respond-async" },
    body: {},
  });
  expect(op.status, op.text).toBe(202);
  await expectOk(
    call("POST", "/v1/subscriptions/", {
      ...partner,
      body: { objects: [{ customer, resource: "tx", amount: 50 }] },
    }),
    201,
  );
  const consumed = await call("POST", `/v1/customers/${customer}/consumption`, {
    token: t.serviceToken,
    headers: { prefer: "respond-async" },
    body: { resource: "tx", amount: 1 },
  });
  expect(consumed.status, consumed.text).toBe(202);
  const issued = await expectOk(
    call("POST", `${base}/commissions`, {
      token: t.serviceToken,
      body: {
        auto_accept: !pending,
        provisions: [{ holder: customer, source: "system", resource: t.resources[0], quantity: 1 }],
      },
    }),
    201,
  );
  const { product, vendorId } = await syndicatedProduct(t);
  const vendorToken = (
    await expectOk(call("POST", `/v1/vendors/${vendorId}/tokens`, { token: t.operator, body: {} }), 201)
  ).token as string;
  const accepted = await call("POST", "/v1/subscriptions/", {
    ...partner,
    body: { objects: [{ customer, resource: product, amount: 2, period: "1 month" }] },
  });
  expect(accepted.status, accepted.text).toBe(202);
  const created = await eventually(async () => {
    const page = await expectOk(call("GET", "/v1/webhooks/deliveries", { token: vendorToken }));
    return page.objects.find(
      (d: { type: string; status: string }) => d.type === "CREATED" && d.status === "delivered",
    );
  }, "the CREATED event delivered");
  const synd = await expectOk(call("GET", `/v1/subscriptions/${created.subscription}`, partner));
  for (const ref of [op.body.opRef, consumed.body.opRef]) {
    await eventually(async () => {
      const r = await call("GET", `/v1/operations/${ref}`, partner);
      return r.status === 202 ? undefined : expect(r.status, r.text).toBe(200);
    }, `operation ${ref} done`);
  }
  const subBody = await expectOk(call("GET", `/v1/subscriptions/${sub.id}`, partner));
  return {
    t,
    customer,
    marker,
    account: account.token,
    project: project.id,
    sub: sub.id,
    subBody,
    order: sub.order,
    op: op.body.opRef,
    consumeOp: consumed.body.opRef,
    serial: issued.serial,
    vendorId,
    vendorToken,
    product,
    syndSub: created.subscription,
    syndOrder: synd.order,
    delivery: created.id,
  };
}

/** Everything of A's that B's calls could change, as A's own principals read it. */
async function stateOf(a: World) {
  const partner = { token: a.t.partnerKey };
  const read = async (path: string, auth: { token: string }) => {
    const r = await call("GET", path, auth);
    return { status: r.status, etag: r.headers.get("etag"), body: r.body };
  };
  return {
    sub: await read(`/v1/subscriptions/${a.sub}`, partner),
    synd: await read(`/api/subscription/${a.syndSub}`, { token: a.vendorToken }),
    customer: await read(`/v1/customers/${a.customer}`, partner),
    quotas: await read(`/v1/customers/${a.customer}/quotas`, partner),
    project: await read(`/v1/projects/${a.project}`, partner),
    charges: await read(`/v1/charges?customer=${a.customer}&limit=0`, partner),
    commission: await read(`${base}/commissions/${a.serial}`, { token: a.t.serviceToken }),
    pending: await read(`${base}/commissions`, { token: a.t.serviceToken }),
    userQuotas: await read(`${base}/quotas`, { token: a.t.userTokens[0] as string }),
    delivery: await read(`/v1/webhooks/deliveries/${a.delivery}`, { token: a.vendorToken }),
    syndication: await syndicationOf(env, a.product),
    credentials: await Promise.all(
      [
        ["/v1/customers", a.t.partnerKey],
        ["/v1/orders", a.account],
        [`${base}/commissions`, a.t.serviceToken],
        [`${base}/quotas`, a.t.userTokens[0] as string],
        ["/v1/webhooks/deliveries", a.vendorToken],
      ].map(async ([path, token]) => (await call("GET", path as string, { token })).status),
    ),
  };
}

/** The family's "does not exist": cloudFault `itemNotFound` on the quota API, problem+json elsewhere. */
function expectNotFound(r: Reply, path: string) {
  const what = `${path}: ${r.text}`;
  expect(r.status, what).toBe(404);
  if (path.startsWith(base)) {
    expect(Object.keys(r.body), what).toEqual(["itemNotFound"]);
  } else {
    expect(r.headers.get("content-type"), what).toMatch(/^application\/problem\+json/);
  }
}

type Who = "partner" | "account" | "service" | "user" | "vendor";
type Row = [Who, string, (a: World, b: World) => string, ((a: World, b: World) => unknown)?];

const authOf = (b: World, who: Who) => {
  switch (who) {
    case "partner":
      return { token: b.t.partnerKey };
    case "account":
      return { headers: basic("me", b.account) };
    case "service":
      return { token: b.t.serviceToken };
    case "user":
      return { token: b.t.userTokens[0] as string };
    case "vendor":
      return { token: b.vendorToken };
  }
};

/** B's principals on A's ids: each answers 404 in its family's format. */
const NOT_FOUND: Row[] = [
  ["partner", "GET", (a) => `/v1/customers/${a.customer}`],
  ["partner", "PATCH", (a) => `/v1/customers/${a.customer}`, () => ({ name: "taken over" })],
  ["partner", "GET", (a) => `/v1/customers/${a.customer}/quotas`],
  ["partner", "POST", (a) => `/v1/customers/${a.customer}/tokens`, () => ({})],
  ["partner", "POST", (a) => `/v1/customers/${a.customer}/api-keys`, () => ({})],
  [
    "partner",
    "POST",
    (a) => `/v1/customers/${a.customer}/consumption`,
    () => ({ resource: "tx", amount: 1 }),
  ],
  ["partner", "GET", (a) => `/v1/customers/${a.customer}/statements/${month()}`],
  ["partner", "GET", (a) => `/v1/projects/${a.project}`],
  ["partner", "GET", (a) => `/v1/projects/${a.customer}`],
  ["partner", "POST", (a, _b) => `/v1/projects/${a.project}/members`, (_a, b) => ({ customer: b.customer })],
  ["partner", "POST", (_a, b) => `/v1/projects/${b.project}/members`, (a) => ({ customer: a.customer })],
  ["partner", "DELETE", (a) => `/v1/projects/${a.project}/members/${a.customer}`],
  [
    "partner",
    "PUT",
    (a) => `/v1/projects/${a.project}/quotas`,
    (a) => ({ resource: a.t.resources[0], limit: 0 }),
  ],
  [
    "partner",
    "PUT",
    (a) => `/v1/projects/${a.customer}/quotas`,
    (a) => ({ resource: a.t.resources[0], limit: 0 }),
  ],
  [
    "partner",
    "PUT",
    (a) => `/v1/projects/${a.project}/members/${a.customer}/quotas`,
    (a) => ({ resource: a.t.resources[0], limit: 0 }),
  ],
  [
    "partner",
    "PUT",
    (a) => `/v1/projects/${a.customer}/members/${a.customer}/quotas`,
    (a) => ({ resource: a.t.resources[0], limit: 0 }),
  ],
  ["partner", "DELETE", (a) => `/v1/credentials/${idOf(a.t.partnerKey)}`],
  ["partner", "DELETE", (a) => `/v1/credentials/${idOf(a.account)}`],
  ["partner", "DELETE", (a) => `/v1/credentials/${idOf(a.t.serviceToken)}`],
  ["partner", "DELETE", (a) => `/v1/credentials/${idOf(a.t.userTokens[0] as string)}`],
  ["partner", "DELETE", (a) => `/v1/credentials/${idOf(a.vendorToken)}`],
  ["service", "GET", (a) => `/v1/operations/${a.consumeOp}`],
  ["service", "GET", (a) => `/v1/operations/${a.op}`],
  [
    "service",
    "POST",
    (a) => `/v1/customers/${a.customer}/consumption`,
    () => ({ resource: "tx", amount: 1 }),
  ],
  ["service", "GET", (a) => `${base}/service_quotas?user=${a.customer}`],
  ["service", "GET", (a) => `${base}/service_quotas?user=${a.t.customers.join(",")}`],
  ["service", "GET", (a) => `${base}/service_project_quotas?project=${a.project}`],
  ["service", "GET", (a) => `${base}/service_project_quotas?project=${a.customer}`],
  [
    "service",
    "POST",
    () => `${base}/commissions`,
    (a, b) => provisionOf(a.customer, "system", b.t.resources[0]),
  ],
  [
    "service",
    "POST",
    () => `${base}/commissions`,
    (a, _b) => provisionOf(a.customer, "system", a.t.resources[0]),
  ],
  [
    "service",
    "POST",
    () => `${base}/commissions`,
    (a, b) => provisionOf(`project:${a.project}`, null, b.t.resources[0]),
  ],
  [
    "service",
    "POST",
    () => `${base}/commissions`,
    (a, b) => provisionOf(`user:${b.customer}`, `project:${a.project}`, b.t.resources[0]),
  ],
  [
    "service",
    "POST",
    () => `${base}/commissions`,
    (a, b) => provisionOf(b.customer, a.project, b.t.resources[0]),
  ],
  ["service", "GET", (a) => `${base}/commissions/${a.serial}`],
  ["service", "POST", (a) => `${base}/commissions/${a.serial}/action`, () => ({ accept: "" })],
  ["service", "POST", (a) => `${base}/commissions/${a.serial}/action`, () => ({ reject: "" })],
  [
    "partner",
    "POST",
    (_a, b) => `/v1/projects/${b.project}/members`,
    (a) => ({ customer: a.t.customers[1] }),
  ],
  ["partner", "DELETE", (a, b) => `/v1/projects/${b.project}/members/${a.customer}`],
  [
    "partner",
    "PUT",
    (a, b) => `/v1/projects/${b.project}/members/${a.customer}/quotas`,
    (_a, b) => ({ resource: b.t.resources[0], limit: 1 }),
  ],
  ["account", "POST", () => "/v1/subscriptioncalculator", (a) => purchaseOf(a.customer)],
  ["account", "POST", () => "/v1/subscriptions/", (a) => purchaseOf(a.customer)],
  ["vendor", "GET", (a) => `/api/subscription/${a.syndSub}`],
  ["vendor", "PATCH", (a) => `/api/subscription/${a.syndSub}`, () => ({ deploymentStatus: "DEPLOYED" })],
  ["vendor", "PATCH", (a) => `/api/subscription/${a.syndSub}`, () => ({ deploymentStatus: "FAILED" })],
  ["vendor", "GET", (a) => `/api/order/${a.syndOrder}`],
  ["vendor", "GET", (a) => `/api/user/${a.customer}`],
  ["vendor", "GET", (a) => `/api/subscription/${a.sub}`],
  ["vendor", "GET", (a) => `/api/order/${a.order}`],
  ["vendor", "GET", (a) => `/v1/webhooks/deliveries/${a.delivery}`],
  ["vendor", "POST", (a) => `/v1/webhooks/deliveries/${a.delivery}/redeliver`],
  [
    "vendor",
    "PUT",
    (a) => `/v1/products/${a.product}/endpoint`,
    () => ({ endpoint: "https://thief.example/hooks" }),
  ],
  ["vendor", "POST", (a) => `/v1/products/${a.product}/signing-secret`],
];

/** What the partner API's subscription routes answer another tenant's ids, with each key that reaches them. */
for (const who of ["partner", "account"] as const) {
  NOT_FOUND.push(
    [who, "GET", (a) => `/v1/subscriptions/${a.sub}`],
    [who, "GET", (a) => `/v1/subscriptions/${a.syndSub}`],
    [who, "GET", (a) => `/v1/subscriptions/${a.sub}/usage`],
    [who, "PATCH", (a) => `/v1/subscriptions/${a.sub}`, () => ({ auto_renew: true })],
    [
      who,
      "PUT",
      (a) => `/v1/subscriptions/${a.sub}`,
      (a) => ({ ...a.subBody, auto_renew: !a.subBody.auto_renew }),
    ],
    [who, "POST", (a) => `/v1/subscriptions/${a.sub}/action/?do=extend`, () => ({})],
    [who, "POST", (a) => `/v1/subscriptions/${a.sub}/action/?do=auto_renew`, () => ({})],
    [who, "DELETE", (a) => `/v1/subscriptions/${a.sub}`],
    [who, "GET", (a) => `/v1/orders/${a.order}`],
    [who, "GET", (a) => `/v1/orders/${a.syndOrder}`],
    [who, "GET", (a) => `/v1/operations/${a.op}`],
    [who, "GET", (a) => `/v1/operations/${a.consumeOp}`],
    [who, "GET", (a) => `/v1/customers/${a.customer}/statements/${month()}`],
  );
}

function purchaseOf(customer: string) {
  return { objects: [{ customer, amount: 1, period: "1 month", resource: "cpu" }] };
}

function provisionOf(holder: string, source: string | null, resource: string | undefined) {
  return { provisions: [{ holder, source, resource, quantity: 1 }] };
}

/** A's own ETags sent back by B, on A's reads and writes: still 404, never 304 or 412. */
const CONDITIONAL: Array<[Who, string, (a: World) => string, string, ((a: World) => unknown)?]> = [
  ["partner", "GET", (a) => `/v1/subscriptions/${a.sub}`, "if-none-match"],
  ["partner", "GET", (a) => `/v1/customers/${a.customer}`, "if-none-match"],
  ["partner", "PATCH", (a) => `/v1/subscriptions/${a.sub}`, "if-match", () => ({ auto_renew: true })],
  ["partner", "DELETE", (a) => `/v1/subscriptions/${a.sub}`, "if-match"],
  ["partner", "POST", (a) => `/v1/subscriptions/${a.sub}/action/?do=auto_renew`, "if-match", () => ({})],
  ["partner", "PATCH", (a) => `/v1/customers/${a.customer}`, "if-match", () => ({ name: "taken over" })],
  ["account", "PATCH", (a) => `/v1/subscriptions/${a.sub}`, "if-match", () => ({ auto_renew: true })],
  ["vendor", "GET", (a) => `/api/subscription/${a.syndSub}`, "if-none-match"],
];

/** Another kind's family: a valid credential of a role the route does not serve. */
const WRONG_KIND: Array<[Who | "operator", string, string, number]> = [
  ["service", "GET", "/v1/customers", 403],
  ["service", "GET", "/v1/orders", 403],
  ["vendor", "GET", "/v1/customers", 403],
  ["user", "GET", "/v1/subscriptions/", 403],
  ["account", "GET", "/v1/customers", 403],
  ["partner", "GET", "/v1/webhooks/deliveries", 403],
  ["partner", "GET", "/v1/services/{a.service}", 403],
  ["partner", "GET", "/v1/partners/{a.partner}", 403],
  ["partner", "GET", "/v1/vendors/{a.vendor}", 403],
  ["partner", "GET", `${base}/service_quotas`, 401],
  ["partner", "GET", `${base}/quotas`, 401],
  ["account", "GET", `${base}/quotas`, 401],
  ["vendor", "GET", `${base}/commissions`, 401],
  ["operator", "GET", `${base}/commissions`, 401],
  ["user", "GET", `${base}/commissions`, 401],
  ["service", "GET", `${base}/quotas`, 401],
  ["partner", "GET", "/api/subscription/{a.syndSub}", 403],
  ["service", "GET", "/api/subscription/{a.syndSub}", 403],
];

describe("tenant isolation", async () => {
  const a = await world({ pending: true });
  // B's commission is accepted: none of B's own is pending to share a serial with A's.
  const b = await world({ pending: false });
  const before = await stateOf(a);
  const secrets = [a.t.partnerId, a.marker, a.t.serviceId, a.vendorId, ...a.t.customers.slice(1)];

  it.each(NOT_FOUND.map((row) => [`${row[0]} ${row[1]} ${row[2](a, b)}`, row] as const))(
    "%s answers 404",
    async (what, [who, method, path, body]) => {
      const r = await call(method, path(a, b), {
        ...authOf(b, who),
        ...(body ? { body: body(a, b) } : method === "GET" || method === "DELETE" ? {} : { body: {} }),
      });
      expectNotFound(r, path(a, b));
      // The answer may name what the request named (Astakos echoes its filter); nothing else of A's.
      const sent = `${path(a, b)} ${JSON.stringify(body?.(a, b) ?? null)}`;
      for (const secret of secrets.filter((s) => !sent.includes(s)))
        expect(r.text, what).not.toContain(secret);
    },
  );

  it.each(WRONG_KIND)("%s %s %s answers %i, whatever it names", async (who, method, path, status) => {
    const named = path
      .replace("{a.service}", a.t.serviceId)
      .replace("{a.partner}", a.t.partnerId)
      .replace("{a.vendor}", a.vendorId)
      .replace("{a.syndSub}", a.syndSub);
    const auth = who === "operator" ? { token: b.t.operator } : authOf(b, who);
    const theirs = await call(method, named, auth);
    expect(theirs.status, theirs.text).toBe(status);
    const none = await call(method, named.replace(/[0-9a-f]{8}-[0-9a-f-]{27}/, crypto.randomUUID()), auth);
    expect(none.status).toBe(status);
  });

  it.each(CONDITIONAL.map((row) => [`${row[0]} ${row[1]} ${row[2](a)} ${row[3]}`, ...row] as const))(
    "%s: A's tag answers 404",
    async (_title, who, method, path, header, body) => {
      const tagged = path(a).startsWith("/api/") ? path(a) : path(a).replace(/\/action\/.*$/, "");
      const owner = tagged.startsWith("/api/") ? { token: a.vendorToken } : { token: a.t.partnerKey };
      const etag = (await call("GET", tagged, owner)).headers.get("etag");
      expect(etag, tagged).not.toBeNull();
      for (const value of [etag as string, "*"]) {
        const r = await call(method, path(a), {
          ...authOf(b, who),
          headers: { ...(authOf(b, who) as { headers?: Record<string, string> }).headers, [header]: value },
          ...(body ? { body: body(a) } : {}),
        });
        expectNotFound(r, path(a));
      }
    },
  );

  it("answers 404 however A's id is spelled or the request asks to be answered", async () => {
    const partner = authOf(b, "partner");
    const variants: Array<[string, string, Record<string, string>, unknown?]> = [
      ["HEAD", `/v1/subscriptions/${a.sub}`, {}],
      ["GET", `/v1/subscriptions/${a.sub.toUpperCase()}/`, {}],
      ["GET", `/v1/orders/${a.order.toUpperCase()}/`, {}],
      ["GET", `/v1/customers/${a.customer.toUpperCase()}`, {}],
      ["DELETE", `/v1/subscriptions/${a.sub}`, { prefer: "respond-async" }],
      ["PATCH", `/v1/subscriptions/${a.sub}`, { prefer: "respond-async" }, { auto_renew: true }],
      ["POST", `/v1/subscriptions/${a.sub}/action/?do=stop`, { prefer: "respond-async" }, {}],
      [
        "POST",
        `/v1/customers/${a.customer}/consumption`,
        { prefer: "respond-async" },
        { resource: "tx", amount: 1 },
      ],
      ["PATCH", `/v1/customers/${a.customer}`, { "idempotency-key": unique("k") }, { name: "taken over" }],
    ];
    for (const [method, path, headers, body] of variants) {
      const r = await call(method, path, { ...partner, headers, ...(body === undefined ? {} : { body }) });
      expect(r.status, `${method} ${path} ${r.text}`).toBe(404);
    }
    const upper = await call("GET", `/api/subscription/${a.syndSub.toUpperCase()}`, authOf(b, "vendor"));
    expect(upper.status).toBe(404);
  });

  it("authenticates no other kind's credential on /identity", async () => {
    for (const token of [b.t.partnerKey, b.account, b.vendorToken, b.t.operator]) {
      const inBody = await call("POST", "/identity/v2.0/tokens", {
        body: { auth: { token: { id: token } } },
      });
      expect(inBody.status, inBody.text).toBe(401);
      const inHeader = await call("POST", "/identity/v2.0/tokens", {
        body: {},
        headers: { "x-auth-token": token },
      });
      expect(inHeader.status, inHeader.text).toBe(401);
    }
    const user = await call("POST", "/identity/v2.0/tokens", {
      body: { auth: { token: { id: b.t.userTokens[0] }, tenantName: a.customer } },
    });
    expect(user.status).toBe(400);
    expect(user.text).not.toContain(a.marker);
  });

  it("buys and prices nothing for A's customer: 400 naming /objects/0/customer, as for none", async () => {
    for (const path of ["/v1/subscriptions/", "/v1/subscriptioncalculator"]) {
      const r = await call("POST", path, {
        token: b.t.partnerKey,
        body: { objects: [{ customer: a.customer, amount: 1, period: "1 month", resource: "cpu" }] },
      });
      expect(r.status, `${path} ${r.text}`).toBe(400);
      expect(r.body.errors.map((e: { point: string }) => e.point)).toEqual(["/objects/0/customer"]);
    }
    const own = await call("POST", "/v1/subscriptions/", {
      headers: basic("me", b.account),
      body: { objects: [{ customer: a.customer, amount: 1, period: "1 month", resource: "cpu" }] },
    });
    expectNotFound(own, "/v1/subscriptions/");
  });

  it("lists nothing of A's, whatever the filter or cursor", async () => {
    const aIds = [
      a.t.partnerId,
      a.marker,
      ...a.t.customers,
      a.sub,
      a.syndSub,
      a.order,
      a.op,
      a.consumeOp,
      a.delivery,
    ];
    const cursors = new Map<string, string>();
    const listed = [
      "/v1/customers",
      "/v1/subscriptions/",
      "/v1/groupedsubscriptions/",
      "/v1/orders",
      "/v1/operations",
      "/v1/charges",
    ];
    for (const path of listed) {
      const page = await expectOk(call("GET", `${path}?limit=1`, { token: a.t.partnerKey }));
      expect(page.meta.next_cursor, path).not.toBeNull();
      cursors.set(path, page.meta.next_cursor);
    }
    for (const who of ["partner", "account"] as const) {
      for (const path of listed) {
        if (who === "account" && path === "/v1/customers") continue;
        for (const query of [
          "limit=0",
          `customer=${a.customer}`,
          `customer=${a.customer}&limit=0`,
          `cursor=${cursors.get(path)}`,
          ...(path === "/v1/charges" ? [`subscription=${a.sub}`] : []),
        ]) {
          const r = await call("GET", `${path}?${query}`, authOf(b, who));
          const what = `${who} ${path}?${query}`;
          expect([200, 400], `${what}: ${r.text}`).toContain(r.status);
          if (r.status === 400) continue;
          for (const id of aIds) expect(r.text, what).not.toContain(id);
          if (query.startsWith("customer=")) {
            expect(r.body.objects, what).toEqual([]);
            if ("total_count" in r.body.meta) expect(r.body.meta.total_count, what).toBe(0);
          }
        }
      }
    }
    const quotas = await call(
      "GET",
      `${base}/service_quotas?user=${b.customer},${a.customer}`,
      authOf(b, "service"),
    );
    expect(Object.keys(quotas.body)).toEqual([b.customer]);
    for (const path of [
      `${base}/service_quotas`,
      `${base}/service_project_quotas`,
      `${base}/commissions`,
      `${base}/quotas`,
    ]) {
      const who = path.endsWith("/quotas") && !path.includes("service") ? "user" : "service";
      const r = await expectOk(call("GET", path, authOf(b, who)));
      for (const id of aIds) expect(JSON.stringify(r), path).not.toContain(id);
      expect(JSON.stringify(r), path).not.toContain(a.project);
    }
    for (const query of ["", "?status=pending", "?status=delivered", "?limit=0"]) {
      const r = await call("GET", `/v1/webhooks/deliveries${query}`, authOf(b, "vendor"));
      expect(r.status).toBe(200);
      for (const id of [...aIds, a.product]) expect(r.text, query).not.toContain(id);
    }
  });

  it("resolves none of A's commissions in bulk: each is failed, not found", async () => {
    const r = await expectOk(
      call("POST", `${base}/commissions/action`, {
        ...authOf(b, "service"),
        body: { accept: [a.serial], reject: [] },
      }),
    );
    expect(r.accepted).toEqual([]);
    expect(r.failed.map(([serial, fault]: [number, object]) => [serial, Object.keys(fault)])).toEqual([
      [a.serial, ["itemNotFound"]],
    ]);
    // A's other pending commissions (stratus's own, holding the syndicated purchase) sit near its
    // serial: B's service resolves none of them either.
    const near = Array.from({ length: 41 }, (_, i) => a.serial - 20 + i).filter((n) => n > 0);
    for (const decision of ["accept", "reject"]) {
      const many = await expectOk(
        call("POST", `${base}/commissions/action`, {
          ...authOf(b, "service"),
          body: { accept: [], reject: [], [decision]: near },
        }),
      );
      expect([many.accepted, many.rejected], decision).toEqual([[], []]);
    }
    const one = await call("POST", `${base}/commissions/${a.serial}/action`, {
      ...authOf(b, "service"),
      body: { reject: "" },
    });
    expectNotFound(one, `${base}/commissions/${a.serial}/action`);
  });

  it("creates nothing under A's partner id", async () => {
    for (const path of ["/v1/customers", "/v1/projects"]) {
      const theirs = await call("POST", path, {
        token: b.t.partnerKey,
        body: { name: "x", partner: a.t.partnerId },
      });
      const none = await call("POST", path, {
        token: b.t.partnerKey,
        body: { name: "x", partner: crypto.randomUUID() },
      });
      expect(theirs.status, theirs.text).toBe(400);
      expect(theirs.body.errors).toEqual(none.body.errors);
    }
  });

  it("keeps Idempotency-Keys apart: B's request under A's key runs as B's own", async () => {
    const key = unique("shared-key");
    const body = { name: "same request" };
    const first = await call("POST", "/v1/customers", {
      token: a.t.partnerKey,
      body,
      headers: { "idempotency-key": key },
    });
    expect(first.status).toBe(201);
    const second = await call("POST", "/v1/customers", {
      token: b.t.partnerKey,
      body,
      headers: { "idempotency-key": key },
    });
    expect(second.status, second.text).toBe(201);
    expect(second.headers.get("idempotent-replayed")).toBeNull();
    expect(second.body.partner).toBe(b.t.partnerId);
    expect(second.body.id).not.toBe(first.body.id);
    const other = await call("POST", "/v1/customers", {
      token: b.t.partnerKey,
      body: { name: "another request" },
      headers: { "idempotency-key": `${key}-2` },
    });
    expect(other.status).toBe(201);
    const crossed = await call("POST", "/v1/customers", {
      token: a.t.partnerKey,
      body,
      headers: { "idempotency-key": `${key}-2` },
    });
    expect(crossed.status, crossed.text).toBe(201);
    expect(crossed.body.partner).toBe(a.t.partnerId);
  });

  it("left everything of A's as it was", async () => {
    const after = await stateOf(a);
    expect(after).toEqual(before);
    expect(after.commission.status).toBe(200);
    expect(after.credentials).toEqual([200, 200, 200, 200, 200]);
    expect(after.synd.body.deploymentStatus).toBe("PENDING");
  });
});
