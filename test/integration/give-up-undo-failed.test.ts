import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import type { OperationPayload } from "../../src/app/intents";
import { MAX_ATTEMPTS, requeueStalledOperations, runOperation } from "../../src/app/operations";
import type { PurchaseIds } from "../../src/app/subscriptions";
import { createOperation } from "../../src/db/operations";
import { armFault, disarmFaults } from "../../src/domain/faults";
import { uuidv7 } from "../../src/domain/ids";
import { recoveryBoundMs } from "../../src/domain/recovery";
import { expectBooksBalance } from "../books";
import { call, expectOk, ledgersHeld, tenantWithCatalog, usageOf } from "../helpers";

afterEach(() => disarmFaults());

/**
 * A purchase out of attempts whose last attempt took effect (its commission accepted, its order
 * completed) and died before storing its answer. The give-up's undo, which would find it took
 * effect, fails (its ledger is unreachable): the operation must not answer "what it bought
 * half-way was undone and nothing is charged; send the request again", which would have the
 * client buy it twice. It is left for the sweep's next give-up, which finds it took effect.
 */
describe("a purchase given up whose undo fails", () => {
  it("is not answered 'undone, nothing is charged' while it is live and charged", async () => {
    const t = await tenantWithCatalog(1, 100);
    const customer = t.customers[0] as string;
    const ids: PurchaseIds = { orders: { [customer]: uuidv7() }, subscriptions: [uuidv7()] };
    const payload: OperationPayload = {
      kind: "purchase",
      partnerId: t.partnerId,
      customerId: customer,
      at: new Date().toISOString(),
      objects: [{ customer, resource: "cpu", amount: 2, period: "1 week" }],
      ids,
    };
    const opRef = `op_${crypto.randomUUID().replaceAll("-", "")}`;
    await createOperation(env, {
      opRef,
      partnerId: t.partnerId,
      customerId: customer,
      kind: "purchase",
      payload: payload as unknown as Record<string, unknown>,
      now: new Date(),
    });
    // Its last attempt does the work and dies before storing the answer.
    armFault("operation.performed");
    await expect(runOperation(env, opRef)).rejects.toThrow();
    await env.DB.prepare("UPDATE operations SET attempts = ? WHERE op_ref = ?")
      .bind(MAX_ATTEMPTS, opRef)
      .run();
    const bound = recoveryBoundMs(env);
    // The sweep gives it up while the ledger cannot be reached.
    const down = ledgersHeld(["settleReferenced"], "die");
    down.release();
    await requeueStalledOperations(down.env, new Date(Date.now() + bound + 1_000));
    const meanwhile = await call("GET", `/v1/operations/${opRef}`, { token: t.partnerKey });
    expect(meanwhile.status, meanwhile.text).not.toBe(409);
    // The next sweep, the ledger back, finds it took effect.
    await requeueStalledOperations(env, new Date(Date.now() + 2 * bound + 2_000));
    const final = await call("GET", `/v1/operations/${opRef}`, { token: t.partnerKey });
    expect(final.status, final.text).toBe(201);
    const sub = await expectOk(
      call("GET", `/v1/subscriptions/${ids.subscriptions[0]}/`, { token: t.partnerKey }),
    );
    expect(sub.end_reason).toBeNull();
    expect(await usageOf(t, 0, "cpu")).toMatchObject({ usage: 2, pending: 0 });
    await expectBooksBalance(t);
  });
});
