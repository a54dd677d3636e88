import * as v from "valibot";
import { ROLES } from "../db/schema";

export const Uuid = v.pipe(v.string(), v.uuid("must be a UUID"));

/** An instant as the API answers it: ISO 8601 in UTC (`format: date-time`). */
export const Timestamp = v.pipe(v.string(), v.isoTimestamp());

export const Integer = v.pipe(v.number(), v.integer());

export const Name = v.pipe(v.string(), v.trim(), v.minLength(1, "must not be empty"), v.maxLength(200));

/** Identifiers that appear in paths and quota keys: no spaces, no slashes. */
export const Slug = v.pipe(
  v.string(),
  v.minLength(1, "must not be empty"),
  v.maxLength(128),
  v.regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]*$/, "may contain only letters, digits and _ . : -"),
);

export const IdParams = v.object({ id: Uuid });

export const Label = v.optional(v.nullable(v.pipe(v.string(), v.maxLength(200))));

export const IssuedCredentialOut = v.object({
  id: Uuid,
  role: v.picklist(ROLES),
  token: v.pipe(v.string(), v.description("The secret token. Shown only in this response; store it now.")),
  created_at: Timestamp,
});

export const KeyRequest = v.object({ label: Label });
