import * as v from "valibot";
import { Integer, Name, QuotaLimit, Slug, Timestamp, Uuid } from "./common";

/** Projects under /v1: a quota holder with members, capping what they hold of it. */

export const CreateProject = v.strictObject(
  {
    name: Name,
    partner: v.optional(v.pipe(Uuid, v.description("Required of an operator; a partner's own otherwise."))),
  },
  "not a member of a project: name and partner are",
);

export const ProjectOut = v.object({
  id: Uuid,
  partner: Uuid,
  name: v.string(),
  base: v.pipe(
    v.boolean(),
    v.description("A customer's base project: its id is the customer's, its only member is that customer."),
  ),
  members: v.array(Uuid),
  created_at: Timestamp,
});

export const AddMember = v.strictObject({ customer: Uuid }, "not a member of a membership: customer is");

export const MemberParams = v.object({ id: Uuid, customer: Uuid });

export const SetProjectLimit = v.strictObject(
  { resource: Slug, limit: QuotaLimit },
  "not a member of a limit: resource and limit are",
);

export const ProjectHoldingOut = v.object({
  holder: v.pipe(
    v.string(),
    v.description("`project:<id>` for the project's own holding, `user:<id>` for a member's."),
  ),
  source: v.pipe(
    v.nullable(v.string()),
    v.description("null for the project's own holding, `project:<id>` for a member's."),
  ),
  resource: v.string(),
  limit: Integer,
  usage: Integer,
  pending: Integer,
});
