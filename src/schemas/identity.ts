import * as v from "valibot";

/** The identity endpoint (`/identity/v2.0/tokens`), in Astakos's OpenStack-Keystone v2.0 shape. */

const TokenId = v.pipe(v.string("must be a string"), v.minLength(1, "must not be empty"), v.maxLength(512));

/**
 * `{"auth": {"token": {"id"}}}` (astakosclient's `authenticate()`), or Keystone's
 * `passwordCredentials` whose password is the token and whose username, if given, must be its
 * holder. An empty body asks for the service catalog alone (or, with `X-Auth-Token`, for that
 * token's access document).
 */
export const Authenticate = v.object({
  auth: v.optional(
    v.object({
      token: v.optional(v.object({ id: TokenId })),
      passwordCredentials: v.optional(v.object({ username: v.optional(v.string()), password: TokenId })),
      tenantName: v.optional(v.nullable(v.string())),
    }),
  ),
});

const Endpoint = v.object({
  versionId: v.string(),
  publicURL: v.pipe(v.string(), v.url()),
  "SNF:uiURL": v.pipe(v.string(), v.url()),
  region: v.string(),
});

const CatalogEntry = v.object({
  name: v.string(),
  type: v.string(),
  endpoints: v.array(Endpoint),
  endpoints_links: v.array(v.unknown()),
});

const Named = v.object({ id: v.string(), name: v.string() });

export const AccessOut = v.object({
  access: v.object({
    token: v.optional(
      v.object({
        id: v.string(),
        expires: v.pipe(
          v.nullable(v.string()),
          v.description("Tokens do not expire (they are revoked): null."),
        ),
        tenant: Named,
      }),
    ),
    user: v.optional(
      v.object({
        id: v.string(),
        name: v.string(),
        roles: v.array(Named),
        roles_links: v.array(v.unknown()),
        projects: v.pipe(
          v.array(v.string()),
          v.description(
            "The projects a user is a member of, its base project (its own id) first; a service's token: none.",
          ),
        ),
      }),
    ),
    serviceCatalog: v.array(CatalogEntry),
  }),
});
