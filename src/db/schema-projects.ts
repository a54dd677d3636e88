import { sql } from "drizzle-orm";
import { index, primaryKey, sqliteTable, text } from "drizzle-orm/sqlite-core";
import { customers, partners } from "./schema";

/**
 * Projects (Astakos's, Synnefo ≥ 0.15): a quota holder whose own holdings cap what its members
 * hold of it. A customer's base project (id = the customer's) is implicit and has no row. The
 * numbers live in the quota ledgers; D1 says whose a project is and who its members are.
 */
export const projects = sqliteTable(
  "projects",
  {
    id: text("id").primaryKey(),
    partnerId: text("partner_id")
      .notNull()
      .references(() => partners.id),
    name: text("name").notNull(),
    createdAt: text("created_at").notNull().default(sql`(strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))`),
  },
  (t) => [index("projects_partner_id").on(t.partnerId, t.id)],
);

export const projectMembers = sqliteTable(
  "project_members",
  {
    projectId: text("project_id")
      .notNull()
      .references(() => projects.id),
    customerId: text("customer_id")
      .notNull()
      .references(() => customers.id),
    createdAt: text("created_at").notNull().default(sql`(strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))`),
    /**
     * Which membership this row is: new each time the customer joins (a join of a member keeps
     * it), so the member's ledger can tell a late call about an ended membership from one about
     * the membership after it. Rows from before it was kept share "".
     */
    generation: text("generation").notNull().default(""),
  },
  (t) => [
    primaryKey({ columns: [t.projectId, t.customerId] }),
    index("project_members_customer").on(t.customerId),
  ],
);
