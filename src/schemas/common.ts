import * as v from "valibot";
import { ROLES } from "../db/schema";
import { parseInstant } from "../domain/instants";

/** Read in any case (RFC 9562 §4: UUIDs are case-insensitive on input), kept and answered in lowercase. */
export const Uuid = v.pipe(v.string(), v.uuid("must be a UUID"), v.toLowerCase());

/** `?customer=` on a list: never widens what the caller sees, so a customer not its own lists nothing. */
export const CustomerFilter = v.optional(
  v.pipe(
    Uuid,
    v.description(
      "Only this customer's; an unknown customer, or one that is not the caller's, answers an empty page.",
    ),
  ),
);

/** An instant as the API answers it: ISO 8601 in UTC (`format: date-time`). */
export const Timestamp = v.pipe(v.string(), v.isoTimestamp());

export const Integer = v.pipe(v.number(), v.integer());

/** A holding's limit: a whole number of units, 0 or more, within JavaScript's safe integers. */
export const QuotaLimit = v.pipe(
  v.number("must be an integer"),
  v.integer("must be an integer"),
  v.minValue(0),
  v.safeInteger(),
);

export const Name = v.pipe(v.string(), v.trim(), v.minLength(1, "must not be empty"), v.maxLength(200));

/** Identifiers that appear in paths and quota keys: no spaces, no slashes. */
export const Slug = v.pipe(
  v.string(),
  v.minLength(1, "must not be empty"),
  v.maxLength(128),
  v.regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]*$/, "may contain only letters, digits and _ . : -"),
);

/**
 * A time as the subscriptions spec reads it (`parseInstant`): UTC unless it names a zone. `roundUp`:
 * a fraction past the millisecond reads as the next one (an end, which rounds up to noon). The
 * description comes before the transformation: the document describes an input only up to its
 * first one, and would drop it after.
 */
const instant = (description: string, fromQuery: boolean, roundUp = false) =>
  v.pipe(
    v.string("must be an ISO 8601 date or date-time"),
    v.description(description),
    v.rawTransform<string, Date>(({ dataset, addIssue, NEVER }) => {
      const at = parseInstant(fromQuery ? plusOfZone(dataset.value) : dataset.value, roundUp);
      if (at) return at;
      addIssue({
        message:
          "must be an ISO 8601 date or date-time (UTC unless it names a zone), e.g. 2027-01-05T12:00:00Z",
      });
      return NEVER;
    }),
  );

/**
 * A query string reads an unencoded `+` as a space, so the zone of `…T10:00:00+01:00` arrives as
 * `…T10:00:00 01:00`: that space stands for the `+` the sender meant.
 */
const plusOfZone = (text: string) => text.replace(/(T[\d:.]+) (\d{2}(?::?\d{2})?)$/, "$1+$2");

const INSTANT_DESCRIPTION =
  "ISO 8601, UTC unless it names a zone: `2027-01-05` (midnight UTC), `2027-01-05T10:00:00`, `2027-01-05T10:00:00Z`, `2027-01-05T11:00:00+01:00`.";

/** An instant in a query string (`since`, `until`), `what` it bounds: a zone's `+` may come unencoded, as a space. */
export const queryInstant = (what: string) =>
  instant(
    `${what} ${INSTANT_DESCRIPTION} Send the zone's \`+\` as \`%2B\`; left unencoded it reads as a space, which is taken for it.`,
    true,
  );

/** An instant that starts a term. */
export const StartInstant = instant(
  `${INSTANT_DESCRIPTION} Rounded back to the noon UTC at or before it, but never to before now: one whose noon has passed starts now.`,
  false,
);

/**
 * An instant that ends a term: rounded up to noon, so a fraction past the millisecond counts (a
 * few microseconds past noon end at the next noon, not at that one).
 */
export const EndInstant = instant(
  `${INSTANT_DESCRIPTION} Rounded up to the next noon UTC; a fraction of a second past noon, to the microsecond or finer, is past it.`,
  false,
  true,
);

export const IdParams = v.object({ id: Uuid });

export const Label = v.optional(v.nullable(v.pipe(v.string(), v.maxLength(200))));

export const IssuedCredentialOut = v.object({
  id: Uuid,
  role: v.picklist(ROLES),
  token: v.pipe(v.string(), v.description("The secret token. Shown only in this response; store it now.")),
  created_at: Timestamp,
});

export const KeyRequest = v.strictObject({ label: Label }, "not a member of a key request: label is");

/** A credential as it stands, its secret never shown again. */
export const CredentialOut = v.object({
  id: Uuid,
  role: v.picklist(ROLES),
  label: v.nullable(v.string()),
  created_at: Timestamp,
  revoked_at: v.pipe(
    v.nullable(Timestamp),
    v.description("When it was revoked: it authenticates nothing since."),
  ),
});
