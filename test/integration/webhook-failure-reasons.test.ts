import { env } from "cloudflare:workers";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { findDelivery } from "../../src/db/webhooks";
import { call, eventually, expectOk, syndicatedProduct, tenant, unique, withCatalog } from "../helpers";

/**
 * A delivery attempt that got no answer records why in terms its vendor can act on: workerd throws
 * "internal error; reference = …" for a DNS, TLS or connect failure, which told the vendor nothing.
 * The throws below are workerd's, as `npm start` recorded them for a .invalid host, an https
 * endpoint speaking plain http, and a closed port.
 */

const throws = new Map<string, () => Error>();

beforeAll(() => {
  const realFetch = globalThis.fetch;
  vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
    const thrown = throws.get(new URL(new Request(input as RequestInfo, init).url).host);
    if (thrown) throw thrown();
    return realFetch(input as RequestInfo, init);
  });
});
afterAll(() => vi.restoreAllMocks());

/** The first attempt's `last_error`, and its own `error`, of a CREATED event to an endpoint that throws `thrown`. */
async function firstFailure(thrown: () => Error) {
  const t = await tenant({ customers: 1 });
  await withCatalog(t);
  const host = `${unique("vendor")}.example`;
  throws.set(host, thrown);
  const { product } = await syndicatedProduct(t, host);
  const bought = await call("POST", "/v1/subscriptions/", {
    token: t.partnerKey,
    body: { objects: [{ customer: t.customers[0], resource: product, amount: 1, period: "1 month" }] },
  });
  expect(bought.status, bought.text).toBe(202);
  const listed = await eventually(async () => {
    const page = await expectOk(call("GET", "/v1/webhooks/deliveries", { token: t.operator }));
    return page.objects.find((d: { product: string }) => d.product === product);
  }, "the delivery");
  await eventually(async () => {
    const row = await findDelivery(env, listed.id, null);
    return row && row.attempts >= 1 ? row : undefined;
  }, "the first attempt");
  const detail = await expectOk(call("GET", `/v1/webhooks/deliveries/${listed.id}`, { token: t.operator }));
  return { last: detail.last_error as string, attempt: detail.attempts[0].error as string };
}

describe("a delivery attempt that got no answer", () => {
  it.each([
    [
      "a DNS, TLS or connect failure",
      () => new Error("internal error; reference = 44dtf4bkt2j2ikbim6vjfusl"),
      /^connection failed: DNS, TLS or connect/,
    ],
    ["a refused connection", () => new Error("Network connection lost."), /^connection lost/],
    [
      "a timeout",
      () => new DOMException("The operation was aborted due to timeout", "TimeoutError"),
      /^timeout: no answer within 10 s$/,
    ],
  ])("records %s as a class the vendor can read, not the runtime's message", async (_, thrown, expected) => {
    const { last, attempt } = await firstFailure(thrown);
    expect(last).toMatch(expected);
    expect(attempt).toBe(last);
    expect(last).not.toMatch(/internal error|reference/);
  });
});
