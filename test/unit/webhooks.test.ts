import { describe, expect, it } from "vitest";
import { eventOf } from "../../src/domain/webhooks";

const live = { endedAt: null };
const ended = { endedAt: "2030-01-01T12:00:00.000Z" };

describe("eventOf", () => {
  it.each([
    ["the first version", "CREATED", null, live],
    ["a change while live", "MODIFIED", live, live],
    ["the version that ends it", "DELETED", live, ended],
    ["a change after it ended", null, ended, ended],
  ] as const)("%s: %s", (_what, event, previous, next) => {
    expect(eventOf(previous, next)).toBe(event);
  });
});
