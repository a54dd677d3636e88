import { primaryOf } from "../db/client";
import {
  type Credential,
  findCredential,
  type IssuedCredential,
  issueCredential,
  type Principal,
  verifySecret,
} from "../db/credentials";
import { parseToken } from "../domain/credentials";
import { AppError } from "../domain/errors";
import { ttlCache } from "../domain/ttl-cache";
import type { Family } from "./family";
import { countFailedAuthentication, failureKey, limitCredential, refuseBlockedAddress } from "./rate-limit";

export type { Family } from "./family";

/**
 * A header sent more than once reaches the Worker joined with ", " (Fetch): the same value repeated
 * (a proxy or client library adding it again) is that value; differing ones stay joined, which
 * no token parses as.
 */
function single(value: string | null): string | null {
  if (value === null || !value.includes(",")) return value;
  const [first, ...rest] = value.split(",").map((part) => part.trim());
  return first !== undefined && rest.every((part) => part === first) ? first : value;
}

/**
 * The password of an HTTP Basic `Authorization` (RFC 7617), which is the API key: CloudSigma's
 * clients send their account's username and password, so the username is not checked (the key's
 * id, an email, anything). Credentials that are not base64 or have no colon present nothing.
 */
function basicPassword(credentials: string): string | null {
  let decoded: string;
  try {
    decoded = atob(credentials.trim());
  } catch {
    return null;
  }
  const colon = decoded.indexOf(":");
  return colon < 0 ? null : decoded.slice(colon + 1);
}

/**
 * The one credential of `presented`, or null when there is none or there are several that differ:
 * a request carrying two (an `X-Api-Key` beside another key's Bearer) does not say whose it is,
 * and served as either it would act for a principal its sender may not have meant.
 */
function oneOf(presented: readonly (string | null | undefined)[]): string | null {
  let only: string | null = null;
  for (const token of presented) {
    if (!token) continue;
    if (only !== null && token !== only) return null;
    only = token;
  }
  return only;
}

/** Each family reads the header its dialect defines. */
function presentedToken(request: Request, family: Family): string | null {
  switch (family) {
    case "partner": {
      const auth = single(request.headers.get("authorization"));
      const basic = auth?.match(/^Basic\s+(.+)$/i)?.[1];
      return oneOf([
        single(request.headers.get("x-api-key")),
        auth?.match(/^Bearer\s+(.+)$/i)?.[1],
        basic ? basicPassword(basic) : null,
      ]);
    }
    case "quota":
      return single(request.headers.get("x-auth-token"));
    case "vendor":
      return single(request.headers.get("cmw-auth-token"));
  }
}

/** The `WWW-Authenticate` challenge of each family's 401: the header (or scheme) it reads. */
export const CHALLENGES: Record<Family, string> = {
  partner: 'ApiKey header="X-Api-Key", Bearer, Basic realm="stratus"',
  quota: 'ApiKey header="X-Auth-Token"',
  vendor: 'ApiKey header="CMW-Auth-Token"',
};

/**
 * Credentials read recently, by id, each with its partner's rate-limit tier: for the cost of a
 * revocation taking up to 30 s to apply, the row is read from D1 once in a while instead of on
 * every request.
 */
const recentCredentials = ttlCache<Credential>(30_000);

/**
 * Forgets this isolate's cached credentials of a partner, so a change of its rate-limit tier
 * applies here at once (other isolates pick it up within the 30 s their rows are kept).
 */
export function forgetPartnerCredentials(partnerId: string): void {
  recentCredentials.forgetWhere((credential) => credential.partnerId === partnerId);
}

/** Forgets a credential this isolate keeps, so its revocation applies here at once. */
export function forgetCredential(id: string): void {
  recentCredentials.forget(id);
}

/**
 * Issues a credential (db `issueCredential`) and forgets the row this isolate keeps of it: issued
 * again under its id (a retry under its Idempotency-Key), the secret it replaced stops here at
 * once, instead of being let in for up to 30 s more as the one the kept row last verified.
 */
export async function issueAnew(
  env: Env,
  input: Parameters<typeof issueCredential>[1],
): Promise<IssuedCredential> {
  const issued = await issueCredential(env, input);
  forgetCredential(issued.id);
  return issued;
}

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

/**
 * A credential as this isolate keeps it (`recentCredentials`), read from the primary: a replica a
 * write behind could hand back, and keep here for 30 s, a row just revoked or issued anew.
 */
async function credentialRow(env: Env, id: string, reload = false): Promise<Credential | undefined> {
  if (reload) recentCredentials.forget(id);
  return recentCredentials(id, () => findCredential(primaryOf(env), id));
}

/** The credential the request's header presents, or null if it is missing, unknown or wrong. */
async function authenticatedCredential(
  request: Request,
  env: Env,
  family: Family,
): Promise<Credential | null> {
  const token = presentedToken(request, family);
  if (!token) return null;
  const parsed = parseToken(token);
  if (!parsed) return null;
  let loaded = false;
  const load = () => {
    loaded = true;
    return findCredential(primaryOf(env), parsed.id);
  };
  let credential = await recentCredentials(parsed.id, load);
  if (!credential || credential.role !== parsed.role || credential.revokedAt) return null;
  if (await secretMatches(credential, parsed.secret)) return credential;
  // A secret the kept row does not know may be one issued since (a key issued again under its
  // Idempotency-Key): the row is read again, once, and the secret it replaced stops here with it.
  if (loaded) return null;
  credential = await credentialRow(env, parsed.id, true);
  if (!credential || credential.role !== parsed.role || credential.revokedAt) return null;
  return (await secretMatches(credential, parsed.secret)) ? credential : null;
}

/**
 * Whether `principal`'s credential still stands, as this isolate knows it: what an answer that
 * goes on after its request was admitted (a list streamed, `limit=0`) asks before each page.
 */
export async function stillAdmitted(env: Env, principal: Principal): Promise<boolean> {
  const credential = await credentialRow(env, principal.credentialId);
  return credential !== undefined && credential.revokedAt === null;
}

/** The credentials the Astakos dialect takes: its services' tokens and their users'. */
const ASTAKOS_ROLES: ReadonlySet<Credential["role"]> = new Set(["service", "customer"]);

const principalOf = (credential: Credential): Principal => ({
  role: credential.role,
  credentialId: credential.id,
  partnerId: credential.partnerId,
  subjectId: credential.subjectId,
});

/**
 * The gate of every authenticated route: refuses an address past its family's failed-authentication
 * limit (429), authenticates (401, counted against the address in the family), then counts the
 * request against its credential's rate limit (429). Rate limits live here and nowhere else
 * (rate-limit.ts).
 *
 * Under the Astakos dialect a blocked address is refused only a credential that fails: its
 * callers are services, each one address that relays every one of its users' tokens
 * (astakosclient's authenticate()), so twenty users with stale tokens would otherwise lock the
 * service out of its own commissions, and any other user out of authenticating, for the window.
 * Only the dialect's own credentials are let through so: any other is good nowhere there, and
 * answered otherwise than a failing one it would tell a blocked address which keys are good.
 */
export async function admit(request: Request, env: Env, family: Family): Promise<Principal> {
  const key = failureKey(request, family);
  if (family !== "quota") refuseBlockedAddress(key);
  const credential = await authenticatedCredential(request, env, family);
  if (!credential) {
    refuseBlockedAddress(key);
    await countFailedAuthentication(env, key);
    throw new AppError("unauthorized", "missing or invalid credentials");
  }
  if (family === "quota" && !ASTAKOS_ROLES.has(credential.role)) refuseBlockedAddress(key);
  await limitCredential(env, credential);
  return principalOf(credential);
}
