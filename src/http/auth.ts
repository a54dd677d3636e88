import { type Credential, findCredential, verifySecret } from "../db/credentials";
import type { Role } from "../db/schema";
import { parseToken } from "../domain/credentials";
import type { Env } from "../env";
import { ttlCache } from "./ttl-cache";

export type Family = "partner" | "quota" | "vendor";

/** Who is calling: every query a handler makes is scoped by this. */
export interface Principal {
  role: Role;
  credentialId: string;
  /** The partner the caller belongs to; null for operators. */
  partnerId: string | null;
  /** What the credential stands for: the service, customer or vendor id. */
  subjectId: string | null;
}

/** Each family reads the header its dialect defines. */
function presentedToken(request: Request, family: Family): string | null {
  switch (family) {
    case "partner": {
      const key = request.headers.get("x-api-key");
      if (key) return key;
      const auth = request.headers.get("authorization");
      const match = auth?.match(/^Bearer\s+(.+)$/i);
      return match?.[1] ?? null;
    }
    case "quota":
      return request.headers.get("x-auth-token");
    case "vendor":
      return request.headers.get("cmw-auth-token");
  }
}

/**
 * Credentials read recently, by id: for the cost of a revocation taking up to 30 s to apply, the
 * row is read from D1 once in a while instead of on every request.
 */
const recentCredentials = ttlCache<Credential>(30_000);

/**
 * The secret last verified against each cached credential row, kept with that row: presenting it
 * again is a constant-time comparison instead of a SHA-256 hash. It goes when the row is reloaded,
 * so a revocation or a changed secret applies exactly when it would without this. Any other
 * secret is hashed and checked against the stored hash as usual.
 */
const verifiedSecrets = new WeakMap<Credential, Uint8Array>();

const encoder = new TextEncoder();

async function secretMatches(credential: Credential, secret: string): Promise<boolean> {
  const presented = encoder.encode(secret);
  const verified = verifiedSecrets.get(credential);
  if (
    verified !== undefined &&
    verified.byteLength === presented.byteLength &&
    crypto.subtle.timingSafeEqual(verified, presented)
  )
    return true;
  if (!(await verifySecret(secret, credential.secretHash))) return false;
  verifiedSecrets.set(credential, presented);
  return true;
}

/** Resolves the caller from the request's credential header, or null if it is missing or unknown. */
export async function authenticate(request: Request, env: Env, family: Family): Promise<Principal | null> {
  const token = presentedToken(request, family);
  if (!token) return null;
  const parsed = parseToken(token);
  if (!parsed) return null;
  const credential = await recentCredentials(parsed.id, () => findCredential(env, parsed.id));
  if (!credential || credential.role !== parsed.role || credential.revokedAt) return null;
  if (!(await secretMatches(credential, parsed.secret))) return null;
  return {
    role: credential.role,
    credentialId: credential.id,
    partnerId: credential.partnerId,
    subjectId: credential.subjectId,
  };
}
