import type { JsonText } from "./json";

/**
 * A strong entity tag (RFC 9110 §8.8.3) of a representation's bytes: two representations share a
 * tag only if their text is the same. Not a cryptographic hash (a tag guards against lost updates,
 * not forgery): 64 bits of a cyrb53-style mix, a few microseconds for a subscription, with no
 * await on the read path.
 */
export function entityTag(text: string): string {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  const hex = (n: number) => (n >>> 0).toString(16).padStart(8, "0");
  return `"${hex(h2)}${hex(h1)}"`;
}

/** Every tag `entityTag` makes has this length: the quotes and 16 hex digits. */
const TAG_LENGTH = 18;

declare const tags: unique symbol;

/**
 * JSON text with its entity tag in front, in one string: a representation rendered once and kept
 * with its tag, and passed on as a bare string (which crosses a Durable Object call cheapest).
 */
export type TaggedJson<T> = string & { readonly [tags]: T };

export const tagJson = <T>(json: JsonText<T>): TaggedJson<T> => `${entityTag(json)}${json}` as TaggedJson<T>;

export const untagJson = <T>(tagged: TaggedJson<T>): { json: JsonText<T>; etag: string } => ({
  etag: tagged.slice(0, TAG_LENGTH),
  json: tagged.slice(TAG_LENGTH) as JsonText<T>,
});
