import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { failOperation, newOpRef } from "../../src/app/operations";
import { createOperation, findOperation } from "../../src/db/operations";
import { AppError } from "../../src/domain/errors";
import { partnerScope } from "../../src/domain/scope";
import * as examples from "../../src/http/examples";
import { call, type Tenant, tenant } from "../helpers";

/**
 * What a finished operation stores (its result or its error, as data) and how the status endpoint
 * renders it; and rows finished before that, which stored their answer rendered.
 */

async function operationOf(t: Tenant): Promise<string> {
  const opRef = newOpRef();
  await createOperation(env, {
    opRef,
    partnerId: t.partnerId,
    customerId: null,
    kind: "update",
    payload: { kind: "update", partnerId: t.partnerId, at: new Date().toISOString(), subscription: "x" },
    now: new Date(),
  });
  return opRef;
}

/** Finishes `opRef` the way rows were finished before results were stored as data. */
async function finishRendered(
  opRef: string,
  row: {
    status: "succeeded" | "failed";
    resultStatus: number;
    resultBody: string;
    resultLocation: string | null;
  },
) {
  await env.DB.prepare(
    "UPDATE operations SET status = ?, result_status = ?, result_body = ?, result_location = ? WHERE op_ref = ?",
  )
    .bind(row.status, row.resultStatus, row.resultBody, row.resultLocation, opRef)
    .run();
}

async function listed(t: Tenant, opRef: string) {
  const page = await call("GET", "/v1/operations?limit=100", { token: t.partnerKey });
  expect(page.status).toBe(200);
  return page.body.objects.find((o: { opRef: string }) => o.opRef === opRef);
}

describe("a finished operation's answer", () => {
  it("a failure is stored as the domain error and rendered as problem+json when read", async () => {
    const t = await tenant();
    const opRef = await operationOf(t);
    const fields = [{ point: "/amount", message: "too large" }];
    await failOperation(env, opRef, new AppError("conflict", "the chain keeps changing", { fields }));

    const row = await findOperation(env, opRef, partnerScope(t.partnerId));
    expect(row).toMatchObject({ status: "failed", resultStatus: null, resultLocation: null });
    expect(JSON.parse(row?.resultBody ?? "null")).toEqual({
      kind: "conflict",
      message: "the chain keeps changing",
      fields,
    });

    const r = await call("GET", `/v1/operations/${opRef}`, { token: t.partnerKey });
    expect(r.status).toBe(409);
    expect(r.headers.get("content-type")).toBe("application/problem+json");
    expect(r.body).toMatchObject({
      type: "https://stratus.dev/problems/conflict",
      title: "Conflict",
      status: 409,
      detail: "the chain keeps changing",
      instance: `/v1/operations/${opRef}`,
      errors: fields,
    });
    expect(await listed(t, opRef)).toMatchObject({
      status: "failed",
      result_status: 409,
      result_location: null,
    });
  });

  it("a row that stored its answer rendered answers it again: its success byte for byte, its problem as the error it tells", async () => {
    const t = await tenant();
    const failed = await operationOf(t);
    const problem = `{"type":"https://stratus.dev/problems/conflict","title":"Conflict","status":409,"detail":"no","instance":"/v1/operations/${failed}"}`;
    await finishRendered(failed, {
      status: "failed",
      resultStatus: 409,
      resultBody: problem,
      resultLocation: null,
    });
    const succeeded = await operationOf(t);
    const body = JSON.stringify(examples.purchase);
    const location = `/v1/subscriptions/${examples.purchase.objects[0]?.id}/`;
    await finishRendered(succeeded, {
      status: "succeeded",
      resultStatus: 201,
      resultBody: body,
      resultLocation: location,
    });

    const f = await call("GET", `/v1/operations/${failed}`, { token: t.partnerKey });
    // A stored problem is answered again as the error it tells, in today's problem+json.
    expect(f.status).toBe(409);
    expect(f.headers.get("content-type")).toBe("application/problem+json");
    expect(f.body).toMatchObject({
      type: "https://stratus.dev/problems/conflict",
      status: 409,
      detail: "no",
    });
    const s = await call("GET", `/v1/operations/${succeeded}`, { token: t.partnerKey });
    expect(s.status).toBe(201);
    expect(s.headers.get("content-type")).toBe("application/json");
    expect(s.headers.get("location")).toBe(location);
    expect(s.text).toBe(body);

    expect(await listed(t, failed)).toMatchObject({ result_status: 409, result_location: null });
    expect(await listed(t, succeeded)).toMatchObject({
      result_status: 201,
      result_location: location,
    });
  });
});
