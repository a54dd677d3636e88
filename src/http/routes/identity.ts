import type * as v from "valibot";
import type { Principal } from "../../db/credentials";
import { findCustomer } from "../../db/customers";
import { findService } from "../../db/partners";
import { projectsOfMember } from "../../db/projects";
import { AppError, badRequest } from "../../domain/errors";
import { AccessOut, Authenticate } from "../../schemas/identity";
import { admit } from "../auth";
import { defineRoute } from "../route";

/**
 * The identity endpoint of Astakos (OpenStack Keystone v2.0 tokens): where astakosclient starts,
 * reading the account API's URL from the service catalog before any other call.
 */

const tag = "Quota (Astakos)";
type Access = v.InferOutput<typeof AccessOut>["access"];

/** The catalog as Astakos publishes it: every endpoint lives on this deployment's origin. */
function serviceCatalog(origin: string): Access["serviceCatalog"] {
  // stratus has no web UI of Astakos's kind; its human-facing page is the API reference.
  const ui = `${origin}/docs`;
  const entry = (name: string, type: string, versionId: string, path: string) => ({
    name,
    type,
    endpoints: [{ versionId, publicURL: `${origin}${path}`, "SNF:uiURL": ui, region: "default" }],
    endpoints_links: [],
  });
  return [
    entry("astakos_account", "account", "v1.0", "/account/v1.0"),
    entry("astakos_identity", "identity", "v2.0", "/identity/v2.0"),
  ];
}

/** The name of what the token stands for: only service and user tokens are Astakos tokens. */
async function holderName(env: Env, principal: Principal): Promise<string> {
  const id = principal.subjectId;
  const holder =
    id === null
      ? undefined
      : principal.role === "service"
        ? await findService(env, id)
        : principal.role === "customer"
          ? await findCustomer(env, id, null)
          : undefined;
  if (!holder) throw new AppError("unauthorized", "Invalid token");
  return holder.name;
}

/** What every token is made of: visible ASCII, which a header carries exactly as sent. */
const TOKEN_TEXT = /^[\x21-\x7e]+$/;

/**
 * `admit` reads a quota token from `X-Auth-Token`: one sent in the body is presented there. One a
 * header cannot carry as sent (a control character, or whitespace a header would trim off) is no
 * token of ours: it is presented as none, and refused as an unknown one is.
 */
function presenting(request: Request, token: string): Request {
  const headers = new Headers(request.headers);
  if (TOKEN_TEXT.test(token)) headers.set("x-auth-token", token);
  else headers.delete("x-auth-token");
  return new Request(request.url, { headers });
}

export const identityRoutes = [
  defineRoute({
    method: "POST",
    path: "/identity/v2.0/tokens",
    summary: "Authenticate a token and read the service catalog (Astakos identity v2.0)",
    description:
      'The client\'s first call. `{"auth": {"token": {"id": "<token>"}}}`, or an empty body with `X-Auth-Token`, answers the token\'s access document: `token`, `user` (the service or customer it stands for) and `serviceCatalog`. An empty body without a token answers the catalog alone. A user\'s `projects` are its base project (its own id) and the projects it is a member of. `astakos_account`\'s `publicURL` is this deployment\'s `/account/v1.0`.',
    tag,
    auth: null,
    body: Authenticate,
    bodyExample: { auth: { token: { id: "stx_svc_…" } } },
    responses: {
      200: {
        description: "The access document",
        schema: AccessOut,
        example: {
          access: {
            token: {
              id: "stx_svc_…",
              expires: null,
              tenant: { id: "0190a4c1-8b5e-7f00-8000-000000000001", name: "cyclades" },
            },
            user: {
              id: "0190a4c1-8b5e-7f00-8000-000000000001",
              name: "cyclades",
              roles: [{ id: "service", name: "service" }],
              roles_links: [],
              projects: [],
            },
            serviceCatalog: serviceCatalog("https://stratus.example.com"),
          },
        },
      },
    },
    errors: {
      bad_request: "No token in `auth`, or a `tenantName` that is not the token's holder (`badRequest`)",
      unauthorized:
        "An unknown or revoked token, or one that is not a service or user token (`unauthorized`)",
      too_many_requests: "Too many failed authentications from this address (`overLimit`, code 429)",
    },
    async handle({ env, request, body }) {
      const catalog = serviceCatalog(new URL(request.url).origin);
      const auth = body.auth;
      const token = auth
        ? (auth.token?.id ?? auth.passwordCredentials?.password)
        : request.headers.get("x-auth-token");
      if (auth && !token) throw badRequest("Malformed request: missing credentials");
      if (!token) return { status: 200, body: { access: { serviceCatalog: catalog } } };
      const principal = await admit(presenting(request, token), env, "quota");
      const name = await holderName(env, principal);
      const id = principal.subjectId ?? "";
      const username = auth?.passwordCredentials?.username;
      if (username !== undefined && username !== id)
        throw new AppError("unauthorized", "Invalid credentials");
      if (auth?.tenantName && auth.tenantName !== id) throw badRequest("Not conforming tenantName");
      const projects = principal.role === "customer" ? [id, ...(await projectsOfMember(env, id))] : [];
      const access: Access = {
        token: { id: token, expires: null, tenant: { id, name } },
        user: { id, name, roles: [{ id: principal.role, name: principal.role }], roles_links: [], projects },
        serviceCatalog: catalog,
      };
      return { status: 200, body: { access } };
    },
  }),
];
