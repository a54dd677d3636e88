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
  resources: [
    { name: "cyclades.vm", unit: null, description: "Number of virtual machines", service: "cyclades" },
    { name: "cyclades.ram", unit: "bytes", description: "Virtual machine memory", service: "cyclades" },
    { name: "cyclades.disk", unit: "bytes", description: "Virtual machine disk space", service: "cyclades" },
  ],
  customers: [
    {
      id: "d0000000-0000-7000-8000-000000000101",
      name: "Demo Customer",
      email: "customer@example.org",
      token: { id: "d0000000-0000-7000-8000-0000000000b1", secret: "demo-user-secret-0101" },
      limits: { "cyclades.vm": 2, "cyclades.ram": 1073741824, "cyclades.disk": 10737418240 },
    },
    {
      id: "d0000000-0000-7000-8000-000000000102",
      name: "Second Customer",
      email: "second@example.org",
      token: { id: "d0000000-0000-7000-8000-0000000000b2", secret: "demo-user-secret-0102" },
      limits: { "cyclades.vm": 5, "cyclades.ram": 2147483648 },
    },
  ],
};
