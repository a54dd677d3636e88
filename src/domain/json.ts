/**
 * JSON text that is known to encode a `T`: the few answers rendered ahead of time (a subscription
 * object's cached read) carry the type they were rendered from, so the compiler checks them
 * against the route's declared schema as it checks a body.
 */

declare const encodes: unique symbol;

export type JsonText<T> = string & { readonly [encodes]: T };

export const jsonText = <T>(value: T): JsonText<T> => JSON.stringify(value) as JsonText<T>;

/**
 * JSON text of a `T` written as it is read (a list answering every page, `limit=0`): the stream
 * carries the type it encodes, checked against the route's schema as a body is.
 */
export type JsonStream<T> = ReadableStream<Uint8Array> & { readonly [encodes]: T };

/**
 * JSON text in ASCII only: every character past U+007F written as a `\u` escape of four hex
 * digits (a UTF-16 pair as two), as Python's `json.dumps` writes it by default and so as Astakos
 * answers. Python 2 clients of the Astakos dialect (astakosclient:
 * `simplejson.loads(unicode(data))`) decode the body as ASCII, so one raw UTF-8 byte (a
 * customer's name, a commission's) fails the whole answer.
 */
export const asciiJson = (value: unknown): string =>
  JSON.stringify(value).replace(
    /[\u0080-\uffff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
