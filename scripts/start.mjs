// `npm start`: the whole API on this machine. Applies the D1 migrations locally, seeds the demo
// tenants and credentials, starts `wrangler dev` (local D1, Durable Objects and Queues) and, once
// the Worker answers, seeds the catalog and holdings through the API and prints the credentials.
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { demo } from "./demo-data.mjs";
import { credentialInsert, formatToken, run, sqlString } from "./lib.mjs";

const port = Number(process.env.PORT ?? 8787);
process.env.WRANGLER_SEND_METRICS ??= "false";
const base = `http://127.0.0.1:${port}`;

async function seedSql() {
  const { partner, service } = demo;
  const lines = [
    `INSERT OR IGNORE INTO partners (id, name) VALUES (${sqlString(partner.id)}, ${sqlString(partner.name)});`,
    `INSERT OR IGNORE INTO services (id, partner_id, name) VALUES (${sqlString(service.id)}, ${sqlString(partner.id)}, ${sqlString(service.name)});`,
    `INSERT OR IGNORE INTO vendors (id, name) VALUES (${sqlString(demo.vendor.id)}, ${sqlString(demo.vendor.name)});`,
    ...demo.customers.map(
      (c) =>
        `INSERT OR IGNORE INTO customers (id, partner_id, name, email) VALUES (${[c.id, partner.id, c.name, c.email].map(sqlString).join(", ")});`,
    ),
    await credentialInsert({
      ...demo.operator,
      role: "operator",
      partnerId: null,
      subjectId: null,
      label: "demo",
    }),
    await credentialInsert({
      ...partner.key,
      role: "partner",
      partnerId: partner.id,
      subjectId: partner.id,
      label: "demo",
    }),
    await credentialInsert({
      ...demo.vendor.token,
      role: "vendor",
      partnerId: null,
      subjectId: demo.vendor.id,
      label: "demo",
    }),
    await credentialInsert({
      ...service.token,
      role: "service",
      partnerId: partner.id,
      subjectId: service.id,
      label: "demo",
    }),
    // Each customer's user token (quota API) and, where it has one, its account key (/v1).
    ...(await Promise.all(
      demo.customers.flatMap((c) =>
        [
          ["customer", c.token],
          ["account", c.accountKey],
        ].flatMap(([role, key]) =>
          key
            ? [credentialInsert({ ...key, role, partnerId: partner.id, subjectId: c.id, label: "demo" })]
            : [],
        ),
      ),
    )),
  ];
  const file = path.join(mkdtempSync(path.join(tmpdir(), "stratus-")), "seed.sql");
  writeFileSync(file, `${lines.join("\n")}\n`);
  return file;
}

async function waitUntilUp(child) {
  for (let i = 0; i < 240; i++) {
    if (child.exitCode !== null) throw new Error("wrangler dev exited before the Worker answered");
    try {
      const res = await fetch(`${base}/healthz`);
      if (res.ok) return;
    } catch {
      // Not listening yet.
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`the Worker did not answer at ${base} within two minutes`);
}

/**
 * Catalog and holdings go through the API: holdings live in Durable Objects. Only what is missing
 * is written, as the SQL seed's INSERT OR IGNORE does: a restart on the same `.wrangler/` state
 * keeps what the operator changed since (a limit, a price, the demo product's endpoint).
 */
async function seedThroughApi(operatorToken) {
  const headers = { "x-api-key": operatorToken, "content-type": "application/json" };
  const get = async (path) => {
    const res = await fetch(`${base}${path}`, { headers });
    if (res.status === 404) return null;
    if (!res.ok) throw new Error(`reading ${path} failed: ${res.status} ${await res.text()}`);
    return res.json();
  };
  const put = async (path, body) => {
    const res = await fetch(`${base}${path}`, { method: "PUT", headers, body: JSON.stringify(body) });
    if (!res.ok) throw new Error(`seeding ${path} failed: ${res.status} ${await res.text()}`);
  };
  const resources = new Set((await get("/v1/resources")).objects.map((r) => r.name));
  for (const { name, ...resource } of demo.resources) {
    if (!resources.has(name)) await put(`/v1/resources/${name}`, resource);
  }
  for (const { id, ...product } of demo.products) {
    if (await get(`/v1/products/${id}`)) continue;
    const syndication =
      id === "crm-seats"
        ? { delivery: "syndicated", vendor: demo.vendor.id, endpoint: demo.vendor.endpoint }
        : {};
    await put(`/v1/products/${id}`, {
      ...product,
      currency: "EUR",
      quota_resource: `stratus.${id}`,
      ...syndication,
    });
  }
  for (const customer of demo.customers) {
    const held = await get(`/v1/customers/${customer.id}/quotas`);
    const limited = new Set(
      (held?.objects ?? []).filter((h) => h.source === "system").map((h) => h.resource),
    );
    for (const [resource, limit] of Object.entries(customer.limits)) {
      if (limited.has(resource)) continue;
      await put(`/v1/customers/${customer.id}/quotas`, { source: "system", resource, limit });
    }
  }
}

function banner() {
  const token = (role, c) => formatToken(role, c.id, c.secret);
  const rows = [
    ["operator (X-Api-Key)", token("operator", demo.operator)],
    [`partner ${demo.partner.name} (X-Api-Key)`, token("partner", demo.partner.key)],
    [`service ${demo.service.name} (X-Auth-Token)`, token("service", demo.service.token)],
    [`vendor ${demo.vendor.name} (CMW-Auth-Token)`, token("vendor", demo.vendor.token)],
    ...demo.customers.map((c) => [`user ${c.name} ${c.id} (X-Auth-Token)`, token("customer", c.token)]),
    ...demo.customers.flatMap((c) =>
      c.accountKey
        ? [[`account of ${c.name} (X-Api-Key, or Basic's password)`, token("account", c.accountKey)]]
        : [],
    ),
  ];
  return [
    "",
    `stratus is serving at ${base}  (API reference: ${base}/docs, OpenAPI: ${base}/openapi.json)`,
    "Demo credentials (local development only):",
    ...rows.map(([who, secret]) => `  ${who}\n    ${secret}`),
    "",
    `Try: curl -s ${base}/account/v1.0/quotas -H 'X-Auth-Token: ${token("customer", demo.customers[0].token)}'`,
    "",
  ].join("\n");
}

console.log("Applying D1 migrations to the local database…");
await run("wrangler", ["d1", "migrations", "apply", "DB", "--local"], { quiet: true });
console.log("Seeding demo data…");
await run("wrangler", ["d1", "execute", "DB", "--local", `--file=${await seedSql()}`], { quiet: true });

const dev = spawn(
  "wrangler",
  ["dev", "--ip", "127.0.0.1", "--port", String(port), "--test-scheduled", "--var", `PUBLIC_URL:${base}`],
  {
    stdio: ["ignore", "inherit", "inherit"],
  },
);
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => dev.kill(signal));
dev.on("exit", (code) => process.exit(code ?? 0));

try {
  await waitUntilUp(dev);
  await seedThroughApi(formatToken("operator", demo.operator.id, demo.operator.secret));
  console.log(banner());
} catch (error) {
  console.error(error instanceof Error ? error.message : error);
  dev.kill("SIGTERM");
  process.exitCode = 1;
}
