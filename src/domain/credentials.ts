/**
 * The credential token format, shared by the Worker and the operator scripts (it imports nothing,
 * so Node can load it directly). A token is `<kind>.<credential id>.<secret>`: the id finds the
 * row, the secret is checked against its stored SHA-256 hash in constant time.
 */

export const TOKEN_KINDS = {
  operator: "op",
  partner: "pk",
  service: "svc",
  customer: "usr",
  /** A customer-scoped `/v1` key: acts as one customer, as a CloudSigma account does. */
  account: "acc",
  vendor: "vnd",
} as const;

export type TokenRole = keyof typeof TOKEN_KINDS;

export interface ParsedToken {
  role: TokenRole;
  id: string;
  secret: string;
}

const ROLE_BY_KIND = new Map<string, TokenRole>(
  Object.entries(TOKEN_KINDS).map(([role, kind]) => [kind, role as TokenRole]),
);

export function formatToken(role: TokenRole, id: string, secret: string): string {
  return `${TOKEN_KINDS[role]}.${id}.${secret}`;
}

export function parseToken(token: string): ParsedToken | null {
  const parts = token.trim().split(".");
  if (parts.length !== 3) return null;
  const [kind, id, secret] = parts as [string, string, string];
  const role = ROLE_BY_KIND.get(kind);
  if (!role || id.length === 0 || id.length > 64 || secret.length < 16 || secret.length > 128) return null;
  return { role, id, secret };
}

/** 32 random bytes, base64url: 256 bits of entropy. */
export function newSecret(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return btoa(String.fromCharCode(...bytes))
    .replaceAll("+", "-")
    .replaceAll("/", "_")
    .replace(/=+$/, "");
}

export async function hashSecret(secret: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(secret));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}
