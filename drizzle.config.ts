import { defineConfig } from "drizzle-kit";

export default defineConfig({
  dialect: "sqlite",
  schema: [
    "./src/db/schema.ts",
    "./src/db/schema-webhooks.ts",
    "./src/db/schema-projects.ts",
    "./src/db/schema-charges.ts",
  ],
  out: "./migrations",
});
