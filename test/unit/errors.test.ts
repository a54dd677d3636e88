import { describe, expect, it } from "vitest";
import { AppError, type ErrorKind, isFinalAnswer } from "../../src/domain/errors";
import { STATUS_OF } from "../../src/http/errors";

describe("error kinds", () => {
  it("a final answer is exactly a kind HTTP answers with a 4xx", () => {
    for (const [kind, status] of Object.entries(STATUS_OF)) {
      expect(isFinalAnswer(new AppError(kind as ErrorKind, "x")), kind).toBe(status < 500);
    }
  });

  it("anything but an AppError is not a final answer", () => {
    expect(isFinalAnswer(new Error("D1 is down"))).toBe(false);
    expect(isFinalAnswer({ kind: "bad_request", message: "x" })).toBe(false);
  });
});
