// Fixed demo data for local development only: `npm start` writes it into the local D1 database
// (and the holders' ledgers through the running Worker). None of it exists in a deployment.

export const demo = {
  operator: { id: "d0000000-0000-7000-8000-0000000000a0", secret: "demo-operator-secret-0000" },
  partner: {
    id: "d0000000-0000-7000-8000-000000000001",
    name: "Demo Partner",
    key: { id: "d0000000-0000-7000-8000-0000000000a1", secret: "demo-partner-secret-0001" },
  },
  service: {
    id: "d0000000-0000-7000-8000-000000000002",
    name: "cyclades",
    token: { id: "d0000000-0000-7000-8000-0000000000a2", secret: "demo-service-secret-0002" },
  },
  vendor: {
    id: "d0000000-0000-7000-8000-000000000003",
    name: "Demo Vendor",
    token: { id: "d0000000-0000-7000-8000-0000000000c1", secret: "demo-vendor-secret-0001" },
    /** `npm run webhook-receiver` listens here and prints what arrives. */
    endpoint: "http://127.0.0.1:9999/hooks",
  },
  resources: [
    { name: "cyclades.vm", unit: null, description: "Number of virtual machines", service: "cyclades" },
    { name: "cyclades.ram", unit: "bytes", description: "Virtual machine memory", service: "cyclades" },
    { name: "cyclades.disk", unit: "bytes", description: "Virtual machine disk space", service: "cyclades" },
    ...products().map((p) => ({
      name: `stratus.${p.id}`,
      unit: p.unit,
      description: `${p.name} held by subscriptions`,
      service: "stratus",
    })),
  ],
  products: products(),
  customers: [
    {
      id: "d0000000-0000-7000-8000-000000000101",
      name: "Demo Customer",
      email: "customer@example.org",
      token: { id: "d0000000-0000-7000-8000-0000000000b1", secret: "demo-user-secret-0101" },
      /** A customer-scoped `/v1` key (`account`): buys and reads for this customer only. */
      accountKey: { id: "d0000000-0000-7000-8000-0000000000d1", secret: "demo-account-secret-0101" },
      limits: {
        "cyclades.vm": 2,
        "cyclades.ram": 1073741824,
        "cyclades.disk": 10737418240,
        ...subscriptionLimits(100),
      },
    },
    {
      id: "d0000000-0000-7000-8000-000000000102",
      name: "Second Customer",
      email: "second@example.org",
      token: { id: "d0000000-0000-7000-8000-0000000000b2", secret: "demo-user-secret-0102" },
      limits: { "cyclades.vm": 5, "cyclades.ram": 2147483648, ...subscriptionLimits(20) },
    },
  ],
};

/** One product of every kind, priced in EUR per unit and hour (tx: per GB). */
function products() {
  const p = (id, name, kind, unit, unit_price, aliases = []) => ({
    id,
    name,
    kind,
    unit,
    unit_price,
    aliases,
  });
  return [
    p("dssd", "SSD storage", "timed", "GB", "0.01", ["hdd"]),
    p("cpu", "CPU", "timed", "GHz", "0.02"),
    p("mem", "Memory", "timed", "GB", "0.03"),
    p("tx", "Outbound traffic", "depletable", "GB", "0.05"),
    p("ip", "Public IP", "per_object", "IP", "0.10"),
    p("vlan", "Private VLAN", "per_object", "VLAN", "0.20"),
    p("msft-windows-server", "Windows Server license", "license", "license", "0.04"),
    p("cumulus", "Cumulus cloud (CaaS)", "caas", "cloud", "1.00"),
    p("nimbus", "Nimbus cloud (CaaS)", "caas", "cloud", "2.50"),
    p("crm-seats", "CRM seats (syndicated to Demo Vendor)", "license", "seat", "0.05"),
  ];
}

/** A limit on every product's quota resource, scaled so the demo has room to buy. */
function subscriptionLimits(scale) {
  return Object.fromEntries(
    products().map((p) => [`stratus.${p.id}`, p.kind === "timed" ? scale * 100 : scale]),
  );
}
