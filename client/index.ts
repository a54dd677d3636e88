import createClient, { type Client } from "openapi-fetch";
import type { components, paths } from "./schema";

/**
 * A typed client of the stratus API: paths, parameters, bodies and every declared answer come
 * from openapi.json (client/schema.d.ts, `npm run client`), so a call the document does not allow
 * is a compile error. Each call resolves to `{ data, error, response }`: `data` on a 2xx, `error`
 * (the family's problem or fault body) otherwise.
 */

export type { components, paths };
export type StratusClient = Client<paths>;
export type Schema<Name extends keyof components["schemas"]> = components["schemas"][Name];

export interface StratusClientOptions {
  /** The API's origin, e.g. `http://127.0.0.1:8787`. */
  baseUrl: string;
  /** Sent as `X-Api-Key`: an operator key or a partner's key (`/v1`). */
  apiKey: string;
  /** Defaults to the global fetch; a test passes the Worker's own. */
  fetch?: (request: Request) => Promise<Response>;
}

export function createStratusClient({ baseUrl, apiKey, fetch }: StratusClientOptions): StratusClient {
  return createClient<paths>({ baseUrl, headers: { "X-Api-Key": apiKey }, fetch });
}
