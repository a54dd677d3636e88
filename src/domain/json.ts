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
