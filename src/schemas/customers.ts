import * as v from "valibot";
import { Name, Timestamp, Uuid } from "./common";
import { Pagination, pageMeta } from "./pagination";

const Email = v.pipe(v.string(), v.email("must be an e-mail address"), v.maxLength(254));
const Text = v.pipe(v.string(), v.maxLength(200));

/** The details a vendor sees of a customer (ClouDesire's user: userName, phoneNumber, address). */
const Details = {
  user_name: v.optional(v.nullable(v.pipe(v.string(), v.minLength(1), v.maxLength(100)))),
  phone: v.optional(v.nullable(v.pipe(v.string(), v.regex(/^[+0-9 ()-]{3,32}$/, "must be a phone number")))),
  address: v.optional(
    v.nullable(
      v.strictObject({
        address: v.optional(Text),
        city: v.optional(Text),
        zipCode: v.optional(v.pipe(v.string(), v.maxLength(20))),
        country: v.optional(v.pipe(v.string(), v.regex(/^[A-Z]{2}$/, "must be an ISO 3166 alpha-2 code"))),
      }),
    ),
  ),
};

export const AddressOut = v.object({
  address: v.optional(v.string()),
  city: v.optional(v.string()),
  zipCode: v.optional(v.string()),
  country: v.optional(v.string()),
});

/** A member it does not read answers 400 naming it: a misspelt `emial` would be lost, unseen. */
export const CreateCustomer = v.strictObject(
  {
    partner: v.optional(v.pipe(Uuid, v.description("Required for operators; partners create their own."))),
    name: Name,
    email: v.optional(v.nullable(Email), null),
    ...Details,
  },
  "not a member of a customer: partner, name, email, user_name, phone and address are",
);

export const CustomerOut = v.object({
  id: Uuid,
  partner: Uuid,
  name: v.string(),
  email: v.nullable(v.string()),
  user_name: v.nullable(v.string()),
  phone: v.nullable(v.string()),
  address: v.nullable(AddressOut),
  created_at: Timestamp,
});

export const ListCustomersQuery = Pagination;

export const CustomerPageOut = v.object({ objects: v.array(CustomerOut), meta: pageMeta });

export const UpdateCustomer = v.strictObject(
  { name: v.optional(Name), email: v.optional(v.nullable(Email)), ...Details },
  "only name, email, user_name, phone and address can change",
);
