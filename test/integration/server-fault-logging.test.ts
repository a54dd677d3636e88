import { createExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { AppError } from "../../src/domain/errors";
import { createApp } from "../../src/http/app";
import { defineRoute } from "../../src/http/route";
import { logLines, spyConsole, tenant } from "../helpers";

/**
 * A 5xx the code answers on purpose (an AppError of a server-fault kind: `internal` where an
 * invariant broke, `unavailable` where another attempt holds the work) is a failure like any
 * thrown one: its body is generic but for what a client acts on, and its log line has the detail.
 */

spyConsole();

/** An app of one route whose handler fails with `error`, as `replyOf` or `extend` do on a broken invariant. */
const failingWith = (error: AppError) =>
  createApp([
    defineRoute({
      method: "POST",
      path: "/v1/probe",
      summary: "probe",
      description: "probe",
      tag: "Meta",
      auth: ["partner"],
      responses: {},
      handle: () => {
        throw error;
      },
    }),
  ]);

async function send(
  app: ReturnType<typeof createApp>,
  key: string,
  requestId: string,
  idempotencyKey?: string,
) {
  const headers: Record<string, string> = { "x-api-key": key, "x-request-id": requestId };
  if (idempotencyKey) headers["idempotency-key"] = idempotencyKey;
  const request = new Request("http://stratus.test/v1/probe", { method: "POST", headers });
  const response = await app(request, env, createExecutionContext());
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

describe("a 5xx answered from an AppError", () => {
  it.each([
    ["without", undefined],
    ["under", "fault-key"],
  ])(
    "an internal one is logged once with its detail, and answered generic, %s an Idempotency-Key",
    async (_, key) => {
      const t = await tenant({ customers: 0 });
      const app = failingWith(new AppError("internal", "a purchase bought nothing"));
      const requestId = `fault-internal-${key ?? "bare"}`;
      const r = await send(app, t.partnerKey, requestId, key);
      expect(r.status).toBe(500);
      expect(r.body).toMatchObject({ status: 500, detail: "internal error", request_id: requestId });
      expect(JSON.stringify(r.body)).not.toContain("bought nothing");
      expect(logLines("error", "request.unhandled")).toEqual([
        expect.objectContaining({
          requestId,
          method: "POST",
          route: "/v1/probe",
          status: 500,
          error: "a purchase bought nothing",
        }),
      ]);
      expect(logLines("log", "request").filter((l) => l.requestId === requestId)).toEqual([
        expect.objectContaining({ status: 500 }),
      ]);
    },
  );

  it("an unavailable one keeps its advice for the client, and is logged once too", async () => {
    const t = await tenant({ customers: 0 });
    const message = "commission c-1 is being issued by another request; try again";
    const app = failingWith(new AppError("unavailable", message));
    const r = await send(app, t.partnerKey, "fault-unavailable", "busy-key");
    expect(r.status).toBe(503);
    expect(r.body).toMatchObject({ detail: message, request_id: "fault-unavailable" });
    expect(logLines("error", "request.unhandled")).toEqual([
      expect.objectContaining({
        requestId: "fault-unavailable",
        route: "/v1/probe",
        status: 503,
        error: message,
      }),
    ]);
  });
});
