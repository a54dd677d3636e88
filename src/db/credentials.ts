import { and, eq, getTableColumns, isNull } from "drizzle-orm";
import { formatToken, hashSecret, newSecret, type TokenRole } from "../domain/credentials";
import { AppError } from "../domain/errors";
import { uuidv7 } from "../domain/ids";
import { database } from "./client";
import { credentials, partners, type RateLimitTier, type Role } from "./schema";

export type Credential = typeof credentials.$inferSelect & {
  /** The rate-limit tier of the credential's partner; null for those of no partner (operators, vendors). */
  rateLimit: RateLimitTier | null;
};

/** Who is calling, as a credential says: every query a request makes is scoped by this. */
export interface Principal {
  role: Role;
  credentialId: string;
  /** The partner the caller belongs to; null for operators. */
  partnerId: string | null;
  /** What the credential stands for: the service, customer or vendor id. */
  subjectId: string | null;
}

export interface IssuedCredential {
  id: string;
  role: TokenRole;
  /** The full secret token; returned once, never stored. */
  token: string;
  created_at: string;
}

/**
 * Revokes credential `id` (once: revoking it again keeps the first time), if it is `partnerId`'s
 * (null: anyone's). Answers the credential as it now stands; undefined if there is none to revoke.
 */
export async function revokeCredential(env: Env, id: string, partnerId: string | null, at: Date) {
  const db = database(env);
  const mine =
    partnerId === null
      ? eq(credentials.id, id)
      : and(eq(credentials.id, id), eq(credentials.partnerId, partnerId));
  await db
    .update(credentials)
    .set({ revokedAt: at.toISOString() })
    .where(and(mine, isNull(credentials.revokedAt)));
  return db.select().from(credentials).where(mine).get();
}

/** The credential with its partner's rate-limit tier, in one query (auth reads both on every request). */
export async function findCredential(env: Env, id: string): Promise<Credential | undefined> {
  return database(env)
    .select({ ...getTableColumns(credentials), rateLimit: partners.rateLimit })
    .from(credentials)
    .leftJoin(partners, eq(partners.id, credentials.partnerId))
    .where(eq(credentials.id, id))
    .get();
}

export async function verifySecret(secret: string, storedHash: string): Promise<boolean> {
  const presented = new TextEncoder().encode(await hashSecret(secret));
  const stored = new TextEncoder().encode(storedHash);
  return presented.byteLength === stored.byteLength && crypto.subtle.timingSafeEqual(presented, stored);
}

/**
 * Creates a credential with a fresh random secret and returns the token (the only time it is
 * seen). Issued again under the same `id` (a resumed request whose first answer was lost, so its
 * secret was never seen), the credential gets the new secret instead of a second credential.
 */
export async function issueCredential(
  env: Env,
  input: {
    id?: string;
    role: TokenRole;
    partnerId: string | null;
    subjectId: string | null;
    label?: string | null;
  },
): Promise<IssuedCredential> {
  const id = input.id ?? uuidv7();
  const secret = newSecret();
  const secretHash = await hashSecret(secret);
  const row = await database(env)
    .insert(credentials)
    .values({
      id,
      role: input.role,
      partnerId: input.partnerId,
      subjectId: input.subjectId,
      secretHash,
      label: input.label ?? null,
    })
    // Issued again under its id (a retry of the request that issued it): a new secret, unless revoked.
    .onConflictDoUpdate({
      target: credentials.id,
      set: { secretHash },
      setWhere: isNull(credentials.revokedAt),
    })
    .returning({ createdAt: credentials.createdAt })
    .get();
  if (!row) throw new AppError("conflict", `credential ${id} was revoked; issue a new one`);
  return { id, role: input.role, token: formatToken(input.role, id, secret), created_at: row.createdAt };
}
