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

/**
 * The client reads its own writes from any D1 replica (README, "Read replication"): it keeps the
 * latest `X-D1-Bookmark` it was answered (bookmarks compare as strings, the greater the later) and
 * sends it with each request, unless the call sets one itself.
 */
export function createStratusClient({ baseUrl, apiKey, fetch }: StratusClientOptions): StratusClient {
  const client = createClient<paths>({ baseUrl, headers: { "X-Api-Key": apiKey }, fetch });
  let latest: string | null = null;
  client.use({
    onRequest({ request }) {
      if (latest !== null && !request.headers.has("X-D1-Bookmark"))
        request.headers.set("X-D1-Bookmark", latest);
      return request;
    },
    onResponse({ response }) {
      const bookmark = response.headers.get("X-D1-Bookmark");
      if (bookmark !== null && (latest === null || bookmark > latest)) latest = bookmark;
      return response;
    },
  });
  return client;
}
