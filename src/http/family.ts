/** The API family a path belongs to: each reads its own credential header and renders its own errors. */
export type Family = "partner" | "quota" | "vendor";
