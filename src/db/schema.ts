import { sql } from "drizzle-orm";
import { index, integer, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";

const createdAt = () => text("created_at").notNull().default(sql`(strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))`);

export const partners = sqliteTable("partners", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  createdAt: createdAt(),
});

export const services = sqliteTable(
  "services",
  {
    id: text("id").primaryKey(),
    partnerId: text("partner_id")
      .notNull()
      .references(() => partners.id),
    name: text("name").notNull(),
    createdAt: createdAt(),
  },
  (t) => [uniqueIndex("services_partner_name").on(t.partnerId, t.name)],
);

export const customers = sqliteTable(
  "customers",
  {
    id: text("id").primaryKey(),
    partnerId: text("partner_id")
      .notNull()
      .references(() => partners.id),
    name: text("name").notNull(),
    email: text("email"),
    createdAt: createdAt(),
  },
  (t) => [index("customers_partner_id").on(t.partnerId, t.id)],
);

export const ROLES = ["operator", "partner", "service", "customer", "vendor"] as const;
export type Role = (typeof ROLES)[number];

/**
 * Every secret the API accepts. `subjectId` is what the credential stands for: the partner of a
 * partner key, the service of a service token, the customer of a user token.
 */
export const credentials = sqliteTable(
  "credentials",
  {
    id: text("id").primaryKey(),
    role: text("role", { enum: ROLES }).notNull(),
    partnerId: text("partner_id").references(() => partners.id),
    subjectId: text("subject_id"),
    secretHash: text("secret_hash").notNull(),
    label: text("label"),
    createdAt: createdAt(),
    revokedAt: text("revoked_at"),
  },
  (t) => [index("credentials_subject").on(t.role, t.subjectId)],
);

export const resources = sqliteTable("resources", {
  name: text("name").primaryKey(),
  unit: text("unit"),
  description: text("description").notNull().default(""),
  service: text("service").notNull(),
  allowInProjects: integer("allow_in_projects", { mode: "boolean" }).notNull().default(true),
  createdAt: createdAt(),
});

export const COMMISSION_STATES = [
  "issuing",
  "pending",
  "accepting",
  "rejecting",
  "accepted",
  "rejected",
  "failed",
] as const;
export type CommissionState = (typeof COMMISSION_STATES)[number];

/**
 * The commission index. The provisions themselves are held by the holders' ledgers; this row
 * allocates the serial and records the decision before any ledger applies it, so a resolve that
 * stops halfway is finished by the next attempt instead of being torn.
 */
export const commissions = sqliteTable(
  "commissions",
  {
    serial: integer("serial").primaryKey({ autoIncrement: true }),
    serviceId: text("service_id")
      .notNull()
      .references(() => services.id),
    name: text("name").notNull().default(""),
    state: text("state", { enum: COMMISSION_STATES }).notNull(),
    provisions: text("provisions", { mode: "json" }).notNull().$type<StoredProvision[]>(),
    issueTime: text("issue_time").notNull(),
    updatedAt: text("updated_at").notNull(),
  },
  (t) => [
    index("commissions_service_state").on(t.serviceId, t.state, t.serial),
    index("commissions_state_updated").on(t.state, t.updatedAt),
  ],
);

export interface StoredProvision {
  holder: string;
  source: string;
  resource: string;
  quantity: number;
}
