import * as v from "valibot";
import { Name, Uuid } from "./common";
import { Pagination } from "./pagination";

export const CreateCustomer = v.object({
  partner: v.optional(v.pipe(Uuid, v.description("Required for operators; partners create their own."))),
  name: Name,
  email: v.optional(
    v.nullable(v.pipe(v.string(), v.email("must be an e-mail address"), v.maxLength(254))),
    null,
  ),
});

export const CustomerOut = v.object({
  id: Uuid,
  partner: Uuid,
  name: v.string(),
  email: v.nullable(v.string()),
  created_at: v.string(),
});

export const ListCustomersQuery = Pagination;

export const UpdateCustomer = v.strictObject(
  {
    name: v.optional(Name),
    email: v.optional(v.nullable(v.pipe(v.string(), v.email("must be an e-mail address"), v.maxLength(254)))),
  },
  "only name and email can change",
);
