import { choiceFor } from "../app/intents";
import { AppError } from "../domain/errors";
import { entityTag } from "../domain/etag";
import type { JsonText } from "../domain/json";

/**
 * Conditional requests (RFC 9110 §13): single reads answer a strong `ETag` of their JSON text;
 * writes honour `If-Match`; app.ts answers `If-None-Match` on reads with 304.
 */

/** A 200 reply with the ETag of `representation` (by default the body: a write may answer more). */
export function tagged<B>(body: B, representation: unknown = body) {
  return { status: 200, body, headers: { ETag: entityTag(JSON.stringify(representation)) } } as const;
}

/** A 200 reply of JSON text already serialized, with the ETag of that text. */
export function taggedText<T>(json: JsonText<T>, etag = entityTag(json)) {
  return { status: 200, json, headers: { ETag: etag } } as const;
}

/** The entity tags a header lists; a weak one (`W/"…"`) keeps its prefix, so it never matches strongly. */
const tagsOf = (header: string): string[] => header.match(/(?:W\/)?"[^"]*"/g) ?? [];

/**
 * Evaluates the request's If-Match against the target's current representation (`current`, read
 * only when a tag must be compared): 412 unless it is `*` (the caller found the target: it exists)
 * or lists the current tag. Says whether a tag was compared: the write is then made conditional on
 * the version compared, so a change between this check and the write answers 412 too.
 */
export async function ifMatch(request: Request, current: () => unknown): Promise<boolean> {
  const header = request.headers.get("if-match");
  if (header === null || header.trim() === "*") return false;
  const tag = entityTag(JSON.stringify(await current()));
  if (!tagsOf(header).includes(tag)) throw preconditionFailed();
  return true;
}

/** What a conditional write compared its tag with, and whether that was an earlier attempt's comparison. */
export interface Matched<T> {
  compared: T;
  /**
   * The comparison was the first attempt's, recorded with the Idempotency-Key: that attempt may
   * have written already, so a write that finds the target moved on from `compared` answers as
   * done if its change is in effect (RFC 9110 §13.1.1), and 412 only if it is not.
   */
  recalled: boolean;
}

/**
 * `ifMatch` for a write whose check is part of its statement (the row's version, or what was
 * compared, in its `WHERE`): `compared` (what the write must find) is recorded with the request's
 * Idempotency-Key once its tag matched, before the write. The same request again, after a first
 * attempt that wrote and died before its answer was kept (or whose answer, showing a secret, is
 * never kept), uses that comparison instead of comparing its tag with the representation its own
 * first attempt changed, which answered 412 for a change it had made. Undefined when no tag was
 * compared (no If-Match, or `*`).
 */
export async function matched<T>(
  request: Request,
  current: () => unknown,
  compared: T,
): Promise<Matched<T> | undefined> {
  const header = request.headers.get("if-match");
  if (header === null || header.trim() === "*") return undefined;
  const choice = await choiceFor(request, async () => {
    await ifMatch(request, current);
    return JSON.stringify(compared);
  });
  return { compared: JSON.parse(choice.value) as T, recalled: choice.recalled };
}

/** Whether `target` already has every value `changes` sets: a change in effect. */
export const inEffect = (target: object, changes: object): boolean =>
  Object.entries(changes).every(
    ([key, value]) =>
      value === undefined ||
      JSON.stringify((target as Record<string, unknown>)[key] ?? null) === JSON.stringify(value ?? null),
  );

export const preconditionFailed = () =>
  new AppError(
    "precondition_failed",
    "If-Match does not match the current representation: it changed since it was read; read it again",
  );

/** 304 for a read whose If-None-Match lists the answer's tag (weak comparison, as §13.1.2 says). */
export function notModified(request: Request, response: Response): Response | null {
  const header = request.headers.get("if-none-match");
  if (header === null || response.status !== 200) return null;
  const etag = response.headers.get("etag");
  if (etag === null) return null;
  const bare = (tag: string) => tag.replace(/^W\//, "");
  const matches = header.trim() === "*" || tagsOf(header).some((tag) => bare(tag) === bare(etag));
  return matches ? new Response(null, { status: 304, headers: response.headers }) : null;
}
