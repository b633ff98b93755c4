import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from "fastify";
import { decodeJwt } from "../../credential/index.ts";
import { KPartyError, type ServiceErrorCode } from "../../errors/index.ts";
import type { OAuthClient } from "../../state/port.ts";
import type { SchemaType } from "../../util/schema-type.ts";
import { auditEntryOf } from "../audit-entry.ts";
import { HTTP_STATUS } from "../errors.ts";
import { errorResponses, UNAVAILABLE } from "../schemas.ts";
import type { GatewayServices } from "../services.ts";
import type { AccessClaims } from "../tokens.ts";

/** The request of both endpoints: `token` and an optional `token_type_hint` (RFC 7662 §2.1, RFC 7009 §2.1). */
interface TokenBody {
  token: string;
  token_type_hint?: string;
}

/** The form both endpoints take (also in the OpenAPI document). */
export const OAUTH_BODY_SCHEMA = {
  type: "object",
  required: ["token"],
  properties: {
    token: { type: "string", minLength: 1, maxLength: 16_384 },
    token_type_hint: { type: "string", maxLength: 64 },
  },
} as const;

/** RFC 7662 §2.2, with kparty's members: `models` and `credential_id` (extensions). */
export const INTROSPECTION_SCHEMA = {
  type: "object",
  required: ["active"],
  properties: {
    active: { type: "boolean" },
    scope: { type: "string" },
    models: { type: "array", items: { type: "string" } },
    token_type: { type: "string", enum: ["DPoP", "Bearer"] },
    exp: { type: "integer" },
    iat: { type: "integer" },
    sub: { type: "string" },
    iss: { type: "string" },
    aud: { type: "string" },
    jti: { type: "string" },
    cnf: { type: "object", required: ["jkt"], properties: { jkt: { type: "string" } } },
    credential_id: { type: "string" },
  },
} as const;
/**
 * What `POST /oauth/introspect` answers (derived from its schema): only `active: false`, or
 * `active: true` with every member of a live token (`cnf` for a DPoP-bound token only).
 */
export type TokenIntrospection = SchemaType<typeof INTROSPECTION_SCHEMA>;

const FORM = { "application/x-www-form-urlencoded": { schema: OAUTH_BODY_SCHEMA } };

const INTROSPECT_CODES: ServiceErrorCode[] = ["payload_too_large", "invalid_client", ...UNAVAILABLE];

/** `POST /oauth/introspect` in the document: what the schemas cannot say. */
const INTROSPECT_DOC = {
  summary: "Token introspection (RFC 7662) for resource servers",
  description:
    "Authenticated as a gateway client (`kparty gateway clients add`, HTTP Basic). Answers a live token's " +
    "members — scope, models, token_type, exp, iat, sub (the holder DID), iss, aud, jti, cnf.jkt " +
    "(DPoP-bound tokens) and the extension credential_id — after the same per-use checks as every " +
    "protected request (signature, the credential's window and the token's exp, revocation at " +
    "/oauth/revoke, the credential's on-chain status and its issuer's membership), without a DPoP proof. " +
    'Otherwise only `{"active": false}`. 503 when the check cannot run (fail closed).',
  security: [{ client: [] }],
  bodyContent: FORM,
  tags: ["oauth"],
};

const REVOKE_CODES: ServiceErrorCode[] = [
  "payload_too_large",
  "invalid_client",
  "token_invalid",
  "token_revoked",
  "credential_expired",
  "invalid_dpop_proof",
  "use_dpop_nonce",
  "scope_denied",
  ...UNAVAILABLE,
];

/** `POST /oauth/revoke` in the document. */
const REVOKE_DOC = {
  summary: "Token revocation (RFC 7009): a holder its own tokens, a client with --revoke any token",
  description:
    "A holder authenticates with one of its own access tokens (as on protected routes: " +
    "`Authorization: DPoP` and a proof for POST at this URL, or Bearer in bearer mode) and may revoke " +
    "any token whose sub is itself; another holder's token is 403 `scope_denied`. A gateway client " +
    "added with `--revoke` (HTTP Basic) may revoke any token; one without it gets 403 `scope_denied`. " +
    "The token is refused at every replica (401 `token_revoked`) and by introspection until its exp. " +
    "A token that is invalid, expired or no longer live is answered 200 too (RFC 7009 §2.2). Audited.",
  security: [{ client: [] }, { dpop: [] }, { bearer: [] }],
  bodyContent: FORM,
  tags: ["oauth"],
};

/** The fields of a form body, each at most once (RFC 6749 §3.1), else `malformed`. */
function parseForm(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const [name, value] of new URLSearchParams(text)) {
    if (Object.hasOwn(fields, name)) throw new KPartyError("malformed", `${name} is given more than once`);
    fields[name] = value;
  }
  return fields;
}

const BASIC = /^Basic ([A-Za-z0-9+/]+={0,2})$/i;

/** The `client_id` and `client_secret` of an HTTP Basic header (RFC 6749 §2.3.1), or null. */
function basicCredentials(header: string | undefined): { id: string; secret: string } | null {
  const match = typeof header === "string" ? BASIC.exec(header) : null;
  if (!match) return null;
  const decoded = Buffer.from(match[1] as string, "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  if (colon < 0) return null;
  try {
    return {
      id: decodeURIComponent(decoded.slice(0, colon).replaceAll("+", " ")),
      secret: decodeURIComponent(decoded.slice(colon + 1).replaceAll("+", " ")),
    };
  } catch {
    return null;
  }
}

const invalidClient = () =>
  new KPartyError("invalid_client", "client authentication failed", { details: {} });

/** Whether `error` means the check could not run (503: fail closed), not that the token is not live. */
const cannotDecide = (error: unknown) =>
  !(error instanceof KPartyError) || (HTTP_STATUS[error.code as keyof typeof HTTP_STATUS] ?? 500) >= 500;

type Services = GatewayServices;

/** The gateway client a request authenticates as with HTTP Basic, else `invalid_client`. */
async function authenticateClient(services: Services, request: FastifyRequest): Promise<OAuthClient> {
  const credentials = basicCredentials(request.headers.authorization);
  const client =
    credentials && (await services.oauthClients.authenticate(credentials.id, credentials.secret));
  if (!client) throw invalidClient();
  return client;
}

/** The claims of a live token, or null: the same checks as every protected request, but no proof. */
async function liveClaims(services: Services, token: string): Promise<AccessClaims | null> {
  try {
    const claims = await services.tokens.verifyFresh(token);
    await services.liveToken.revoked(claims);
    await services.liveToken.credential(claims);
    return claims;
  } catch (error) {
    if (cannotDecide(error)) throw error;
    return null;
  }
}

/** `POST /oauth/introspect`: a gateway client asks about a token. */
async function introspect(services: Services, request: FastifyRequest<{ Body: TokenBody }>) {
  await authenticateClient(services, request);
  const claims = await liveClaims(services, request.body.token);
  if (!claims) return { active: false } satisfies TokenIntrospection;
  const { iat } = decodeJwt(request.body.token).payload as { iat: number };
  return {
    active: true,
    scope: claims.actions.join(" "),
    models: claims.models,
    token_type: claims.jkt !== undefined ? "DPoP" : "Bearer",
    exp: claims.expiresAt,
    iat,
    sub: claims.holder,
    iss: services.domain,
    aud: services.domain,
    jti: claims.tokenId,
    ...(claims.jkt !== undefined ? { cnf: { jkt: claims.jkt } } : {}),
    credential_id: claims.credentialId,
  } satisfies TokenIntrospection;
}

/** Who asks for a revocation: a gateway client with the revoke permission, or a holder by its token. */
async function revoker(services: Services, request: FastifyRequest, reply: FastifyReply) {
  const header = request.headers.authorization;
  if (typeof header !== "string") throw invalidClient();
  if (/^Basic /i.test(header)) {
    const client = await authenticateClient(services, request);
    if (!client.canRevoke) {
      throw new KPartyError(
        "scope_denied",
        `gateway client ${client.id} may introspect but not revoke (add a client with --revoke)`,
      );
    }
    return { client: client.id, holder: null };
  }
  const { claims } = await services.authenticate(request, reply);
  await services.liveToken.revoked(claims); // a revoked token authenticates nothing
  return { client: null, holder: claims.holder };
}

/**
 * `POST /oauth/revoke`: the token's id is stored as revoked until its `exp` + skew; a token that
 * is invalid or no longer live needs nothing and is answered 200 too (RFC 7009 §2.2). Audited
 * either way, refusals included.
 */
async function revoke(services: Services, request: FastifyRequest<{ Body: TokenBody }>, reply: FastifyReply) {
  let target: AccessClaims | null = null;
  let by = "";
  const record = (decision: { outcome: "granted"; action: string } | { outcome: "denied"; error: unknown }) =>
    services.audit.append(
      auditEntryOf(request, {
        ...decision,
        holder: target?.holder ?? null,
        credentialId: target?.credentialId ?? null,
        ...(decision.outcome === "denied" ? { action: `token:revoke${by}` } : {}),
      }),
    );
  try {
    const who = await revoker(services, request, reply);
    if (who.client !== null) by = `:client:${who.client}`;
    try {
      target = await services.tokens.verifyFresh(request.body.token);
    } catch (error) {
      if (cannotDecide(error)) throw error;
    }
    if (target && who.holder !== null && target.holder !== who.holder) {
      throw new KPartyError("scope_denied", "a holder may revoke only its own access tokens");
    }
    const keepUntilMs = target ? (target.expiresAt + services.clockSkewSeconds + 1) * 1000 : 0;
    const revokedNow = target !== null && (await services.revokedTokens.revoke(target.tokenId, keepUntilMs));
    const outcome = target === null ? ":inactive" : revokedNow ? "" : ":already";
    await record({ outcome: "granted", action: `token:revoke${outcome}${by}` });
    return {};
  } catch (error) {
    await record({ outcome: "denied", error });
    throw error;
  }
}

/**
 * OAuth token introspection (RFC 7662) and revocation (RFC 7009) of the gateway's access tokens.
 * `POST /oauth/introspect` answers resource servers authenticated as a gateway client (HTTP
 * Basic, `kparty gateway clients`) with the token's members — or only `{"active": false}` for a
 * token that is badly signed, expired, revoked, or grounded on a credential that is revoked,
 * suspended, expired or whose issuer was removed: the guard's own per-use checks
 * (`createLiveTokenCheck`), not a second verdict. `POST /oauth/revoke` revokes a token until its
 * expiry at every replica: a holder its own tokens (authenticated with one of its tokens, as on a
 * protected route), a client with the revoke permission any token. Both take form-encoded
 * `token` (and `token_type_hint`, which is ignored: kparty has access tokens only).
 */
export const oauthRoutes: FastifyPluginAsync<{ services: GatewayServices }> = async (app, { services }) => {
  app.addContentTypeParser(
    "application/x-www-form-urlencoded",
    { parseAs: "string" },
    (_request, body, done) => {
      try {
        done(null, parseForm(body as string));
      } catch (error) {
        done(error as Error, undefined);
      }
    },
  );
  app.post<{ Body: TokenBody }>(
    "/oauth/introspect",
    {
      config: { doc: INTROSPECT_DOC },
      schema: {
        body: OAUTH_BODY_SCHEMA,
        response: {
          200: { description: "the token's state", ...INTROSPECTION_SCHEMA },
          ...errorResponses(INTROSPECT_CODES),
        },
      },
    },
    (request) => introspect(services, request),
  );
  app.post<{ Body: TokenBody }>(
    "/oauth/revoke",
    {
      config: { doc: REVOKE_DOC },
      schema: {
        body: OAUTH_BODY_SCHEMA,
        response: {
          200: { description: "revoked (or nothing to revoke)", type: "object", properties: {} },
          ...errorResponses(REVOKE_CODES),
        },
      },
    },
    (request, reply) => revoke(services, request, reply),
  );
};
