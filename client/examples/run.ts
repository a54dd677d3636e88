// `npm run example`: the main flow against a running stratus (`npm start`), with a partner's key in
// STRATUS_API_KEY and an operator key in STRATUS_OPERATOR_KEY (STRATUS_URL defaults to the local one).
import { createStratusClient } from "../index.ts";
import { runMainFlow } from "./main-flow.ts";

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`set ${name} (npm start prints the demo keys)`);
  return value;
}

const baseUrl = process.env.STRATUS_URL ?? "http://127.0.0.1:8787";
try {
  const result = await runMainFlow(
    {
      partner: createStratusClient({ baseUrl, apiKey: required("STRATUS_API_KEY") }),
      operator: createStratusClient({ baseUrl, apiKey: required("STRATUS_OPERATOR_KEY") }),
    },
    { log: (line) => console.log(line) },
  );
  console.log(
    `done: customer ${result.customer.id}, ${result.listed.length} subscriptions listed, refused with ${result.refusal.status}`,
  );
} catch (error) {
  console.error(
    `the main flow against ${baseUrl} stopped: ${error instanceof Error ? error.message : error}`,
  );
  process.exitCode = 1;
}
