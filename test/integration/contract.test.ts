import { describe, expect, it } from "vitest";
import { checkContract } from "../contract";
import { call, operatorToken } from "../helpers";

/** The contract hook itself: what it lets through and what it stops (every other test relies on it). */

const url = (path: string) => new URL(`http://stratus.test${path}`);
const json = (body: unknown, status: number, headers: Record<string, string> = {}) => ({
  status,
  headers: new Headers({ "content-type": "application/json", ...headers }),
  text: JSON.stringify(body),
});
const problem = (status: number, headers: Record<string, string> = {}) => ({
  status,
  headers: new Headers({ "content-type": "application/problem+json", ...headers }),
  text: JSON.stringify({ type: "https://stratus.dev/problems/x", title: "X", status, detail: "x" }),
});

describe("the contract hook", () => {
  it("passes what the document declares", () => {
    expect(() => checkContract("GET", url("/healthz"), json({ ok: true }, 200))).not.toThrow();
    expect(() => checkContract("GET", url("/v1/customers/abc/"), problem(404))).not.toThrow();
    expect(() => checkContract("GET", url("/nowhere"), problem(404))).not.toThrow();
    expect(() => checkContract("PUT", url("/healthz"), problem(405))).not.toThrow();
    expect(() =>
      checkContract(
        "GET",
        url("/account/v1.0/quotas"),
        json({ unauthorized: { message: "no", code: 401 } }, 401),
      ),
    ).not.toThrow();
  });

  it("stops an undeclared status, a body that does not match, an undeclared member and a missing header", () => {
    expect(() => checkContract("GET", url("/healthz"), json({ ok: true }, 201))).toThrow(
      /GET \/healthz answered 201: the document declares no such answer/,
    );
    expect(() => checkContract("GET", url("/healthz"), json({ ok: "yes" }, 200))).toThrow(
      /does not match the declared schema/,
    );
    expect(() => checkContract("GET", url("/healthz"), json({ ok: true, extra: 1 }, 200))).toThrow(
      /does not match/,
    );
    expect(() => checkContract("GET", url("/v1/customers"), problem(429))).toThrow(
      /required header Retry-After is missing/,
    );
    expect(() =>
      checkContract("GET", url("/v1/customers"), { ...problem(401), headers: new Headers() }),
    ).toThrow(/content-type \(none\)/);
    expect(() =>
      checkContract(
        "GET",
        url("/account/v1.0/quotas"),
        json({ unauthorized: { message: "no", code: 403 } }, 401),
      ),
    ).toThrow(/does not match/);
    expect(() => checkContract("GET", url("/nowhere"), problem(400))).toThrow(/no operation/);
  });

  it("checks every call of the suite, garbage included", async () => {
    const operator = await operatorToken();
    const reply = await call("POST", "/v1/partners", { token: operator, raw: "{not json" });
    expect(reply.status).toBe(400);
  });
});
