import type * as v from "valibot";
import { asciiJson, type JsonStream, type JsonText } from "../domain/json";

/**
 * What a route may answer, declared once: each success status with its body schema (or another
 * media type) and its response headers. The same declaration types the handler's reply, renders
 * it, and writes the OpenAPI document, so code and document cannot drift.
 */

export type Schema = v.GenericSchema;

/** A JSON Schema fragment, as it appears in the document. */
export type JsonSchema = Record<string, unknown>;

export interface HeaderSpec {
  description: string;
  /** Whether every such response carries it: the handler's reply must then give it. */
  required?: boolean;
  schema?: JsonSchema;
}

export type HeaderSpecs = Readonly<Record<string, HeaderSpec>>;

/** The `Location` of what a 201 created (or a result names). */
export const LOCATION = {
  Location: { description: "Where what was created or changed can be read.", required: true },
} as const satisfies HeaderSpecs;

/** A single resource's version, for `If-Match`. */
export const ETAG = {
  ETag: { description: "The representation's version (strong); send it back as `If-Match`." },
} as const satisfies HeaderSpecs;

export interface ResponseSpec {
  description: string;
  /** The JSON body's schema. */
  schema?: Schema;
  /** A body that is not JSON: its media type, and the handler answers it as a string. */
  media?: string;
  headers?: HeaderSpecs;
  /** An example body, for the document. */
  example?: unknown;
}

/** The success answers of a route, by status. Errors are thrown (errors.ts) and declared apart. */
export type Responses = Readonly<Record<number, ResponseSpec>>;

type RequiredNames<H> = { [K in keyof H]: H[K] extends { required: true } ? K : never }[keyof H];

type HeaderValues<H> = { [K in RequiredNames<H>]: string } & {
  [K in Exclude<keyof H, RequiredNames<H>>]?: string;
};

type HeaderPart<X> = X extends { headers: infer H }
  ? [RequiredNames<H>] extends [never]
    ? { headers?: HeaderValues<H> }
    : { headers: HeaderValues<H> }
  : { headers?: undefined };

type BodyPart<X> = X extends { schema: infer S extends Schema }
  ?
      | { body: v.InferOutput<S>; json?: undefined; stream?: undefined }
      | { json: JsonText<v.InferOutput<S>>; body?: undefined; stream?: undefined }
      | { stream: JsonStream<v.InferOutput<S>>; body?: undefined; json?: undefined }
  : X extends { media: string }
    ? { body: string; json?: undefined; stream?: undefined }
    : { body?: undefined; json?: undefined; stream?: undefined };

/** One declared answer: its status, a body of its schema's type, and its required headers. */
type ReplyOf<C, X> = { status: C } & BodyPart<X> & HeaderPart<X>;

/** Every answer a handler of responses `R` may give. */
export type Reply<R extends Responses> = {
  [C in Extract<keyof R, number>]: ReplyOf<C, R[C]>;
}[Extract<keyof R, number>];

/** A reply once its route is erased. */
export interface AnyReply {
  status: number;
  body?: unknown;
  json?: string;
  stream?: ReadableStream<Uint8Array>;
  headers?: Readonly<Record<string, string | undefined>>;
}

/**
 * The Response of a reply: JSON unless the status declares another media type. `ascii`: the body
 * is written in ASCII only (the Astakos dialect's, domain/json.ts `asciiJson`).
 */
export function render(reply: AnyReply, media = "application/json", ascii = false): Response {
  // A plain record crosses into the runtime once, where a Headers object costs a call per header.
  const headers: Record<string, string> = {};
  for (const name in reply.headers) {
    const value = reply.headers[name];
    if (value !== undefined) headers[name] = value;
  }
  const { status } = reply;
  if (reply.json !== undefined || reply.stream !== undefined) {
    headers["content-type"] = "application/json";
    return new Response(reply.json ?? reply.stream, { status, headers });
  }
  if (reply.body === undefined) return new Response(null, { status, headers });
  if (media !== "application/json") {
    headers["content-type"] = media;
    return new Response(String(reply.body), { status, headers });
  }
  headers["content-type"] = "application/json";
  return new Response(ascii ? asciiJson(reply.body) : JSON.stringify(reply.body), { status, headers });
}
