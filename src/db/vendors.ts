import { and, eq, sql } from "drizzle-orm";
import { AppError } from "../domain/errors";
import { olderAfterRotation, replacedSecret, secretsInGrace } from "../domain/webhooks";
import { database } from "./client";
import { products, vendors } from "./schema";

export type Vendor = typeof vendors.$inferSelect;

/** Vendor `id`; if it exists (a resumed request), as it is. */
export async function createVendor(env: Env, id: string, name: string): Promise<Vendor> {
  const created = await database(env)
    .insert(vendors)
    .values({ id, name })
    .onConflictDoNothing()
    .returning()
    .get();
  const found = created ?? (await findVendor(env, id));
  if (!found) throw new Error(`vendor ${id} neither inserted nor found`);
  return found;
}

export async function findVendor(env: Env, id: string): Promise<Vendor | undefined> {
  return database(env).select().from(vendors).where(eq(vendors.id, id)).get();
}

/** Sets where a syndicated product's events go (`endpoint`). */
export async function setSyndication(
  env: Env,
  productId: string,
  changes: { endpoint: string },
  /** Only while the product is still this vendor's: it may have been given to another since it was read. */
  ofVendor?: string,
): Promise<boolean> {
  const mine = ofVendor === undefined ? undefined : eq(products.vendorId, ofVendor);
  const row = await database(env)
    .update(products)
    .set(changes)
    .where(and(eq(products.id, productId), mine))
    .returning({ id: products.id })
    .get();
  return row !== undefined;
}

/** What a rotation did: the previous secret's expiry (null when there was none), or why it did not. */
export type Rotation =
  | { previousSecretExpiresAt: string | null }
  /** `MAX_GRACE_SECRETS` replaced secrets still sign: the oldest of them stops at `until`. */
  | { crowded: true; until: string };

/** Rotations that lose a race for the row read it again, this many times in all. */
const ROTATION_TRIES = 5;

/**
 * Gives product `productId` the signing secret `secret`; the one it replaces, whatever it is by
 * then (a new vendor's, should the product have changed vendor since the caller read it), signs
 * beside it until `expiresAt`, and so does every older one still in its own grace (`now`). The
 * row is written only as it was read (the secret and the previous one's expiry), read again when
 * another write came first. Undefined when the product is not there (or no longer `ofVendor`'s).
 */
export async function rotateSigningSecret(
  env: Env,
  productId: string,
  secret: string,
  expiresAt: string,
  now: string,
  ofVendor?: string,
  /**
   * `expiresAt` is an earlier attempt's of the same rotation (a keyed retry): if that attempt
   * rotated already (the previous secret expires then), only the new secret is replaced, and the
   * previous ones stay those from before it, which the vendor has, not the one it never saw.
   */
  again = false,
): Promise<Rotation | undefined> {
  const mine = ofVendor === undefined ? undefined : eq(products.vendorId, ofVendor);
  for (let tries = 0; tries < ROTATION_TRIES; tries++) {
    const row = await database(env)
      .select({
        signingSecret: products.signingSecret,
        previousSecret: products.previousSecret,
        previousSecretExpiresAt: products.previousSecretExpiresAt,
        olderSecrets: products.olderSecrets,
      })
      .from(products)
      .where(and(eq(products.id, productId), mine))
      .get();
    if (!row) return undefined;
    const previous = replacedSecret(row.previousSecret, row.previousSecretExpiresAt);
    const rotated = again && row.previousSecretExpiresAt === expiresAt;
    const older = rotated ? row.olderSecrets : olderAfterRotation(previous, row.olderSecrets, now);
    if (older === null) {
      const until = secretsInGrace(previous, row.olderSecrets, now)
        .map((g) => g.expiresAt)
        .sort()[0];
      return { crowded: true, until: until ?? now };
    }
    const changes = rotated
      ? { signingSecret: secret }
      : {
          signingSecret: secret,
          previousSecret: row.signingSecret,
          previousSecretExpiresAt: row.signingSecret === null ? null : expiresAt,
          olderSecrets: older,
        };
    const written = await database(env)
      .update(products)
      .set(changes)
      .where(
        and(
          eq(products.id, productId),
          mine,
          sql`${products.signingSecret} IS ${row.signingSecret}`,
          sql`${products.previousSecretExpiresAt} IS ${row.previousSecretExpiresAt}`,
        ),
      )
      .returning({ previousSecretExpiresAt: products.previousSecretExpiresAt })
      .get();
    if (written) return written;
  }
  throw new AppError(
    "unavailable",
    `product ${productId}'s signing secret is being rotated by another request`,
  );
}
