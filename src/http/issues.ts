import type * as v from "valibot";
import type { FieldError } from "../domain/errors";

/** valibot's issues as the field errors every family answers a 400 with. */

/**
 * A member an object requires and the input lacks. An object's own message (a strict object's
 * "not a member of …", for the members it does not take) would say the opposite of what is wrong,
 * and valibot's default names the key in the schema's terms. A loose object (a purchase's, which
 * takes a subscription's own members unread) lacks one the same way.
 */
const missingMember = (issue: v.BaseIssue<unknown>) =>
  (issue.type === "object" || issue.type === "strict_object" || issue.type === "loose_object") &&
  issue.received === "undefined" &&
  issue.expected !== "never";

/**
 * An issue's message without the input valibot's own messages quote at their end ("Invalid type:
 * Expected … but received \"<the value>\""): a secret pasted into the wrong field would go back in
 * the 400 and, under an Idempotency-Key, be kept with it for 24 hours. The expectation stays.
 */
function withoutInput(issue: v.BaseIssue<unknown>): string {
  const { message, received } = issue;
  for (const quoted of [` but received ${received}`, `Received ${received}`]) {
    if (message.endsWith(quoted)) return message.slice(0, -quoted.length).replace(/:\s*$/, "");
  }
  return message;
}

/** The longest member name a pointer names whole. */
const MAX_KEY = 32;

/**
 * A member name as a pointer names it: one the API does not take is the caller's input too, so one
 * longer than any the API has is cut (`…`), which still says where it is without sending it back.
 */
const shownKey = (key: string) => (key.length > MAX_KEY ? `${key.slice(0, MAX_KEY)}…` : key);

/** Turns valibot issues into field errors with JSON Pointers into the request part they came from. */
export function fieldErrors(issues: readonly v.BaseIssue<unknown>[], root: string): FieldError[] {
  return issues.map((issue) => {
    const keys = issue.path?.map((item) => shownKey(String(item.key))) ?? [];
    const point = root + keys.map((k) => `/${k.replaceAll("~", "~0").replaceAll("/", "~1")}`).join("");
    return { point, message: missingMember(issue) ? "is required" : withoutInput(issue) };
  });
}
