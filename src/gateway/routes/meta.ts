import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from "fastify";
import { getChainStatus } from "../../chain/index.ts";
import { ACTIONS, CREDENTIAL_TYPE, STATUS_TYPE } from "../../credential/index.ts";
import type { ServiceErrorCode } from "../../errors/index.ts";
import { DPOP_ALGORITHMS } from "../dpop.ts";
import { errorResponse } from "../errors.ts";
import { errorBody, errorResponses } from "../schemas.ts";
import type { GatewayServices } from "../services.ts";

const str = { type: "string" } as const;
const meta = (summary: string, description?: string) => ({
  doc: { summary, secured: false, tags: ["meta"], ...(description ? { description } : {}) },
});

/** Every failure of the health check is 503, even one that is `internal` elsewhere (500). */
const HEALTH_CODES: ServiceErrorCode[] = [
  "overloaded",
  "registry_unavailable",
  "audit_unavailable",
  "internal",
];

/** `GET /healthz`: 200 ok, or 503 with why (the error of `errorResponse`), or 503 when shedding load. */
const healthzSchema = {
  response: {
    ...errorResponses([]),
    200: {
      description: "ok",
      type: "object",
      required: ["status", "chainId", "blockNumber", "syncedBlock"],
      additionalProperties: false,
      properties: {
        status: { const: "ok" },
        chainId: { type: "integer" },
        blockNumber: { type: "integer" },
        syncedBlock: { type: "integer" },
      },
    },
    503: {
      description:
        "the chain cannot be read, or the audit log has failed (for good), or the gateway is at capacity",
      ...errorBody(HEALTH_CODES),
      properties: {
        ...errorBody(HEALTH_CODES).properties,
        status: { const: "unavailable" },
        chainId: { type: "integer" },
        blockNumber: { type: "null" },
        syncedBlock: { type: "integer" },
      },
    },
  },
};

const jwkSchema = {
  type: "object",
  required: ["kty", "crv", "x", "kid", "alg", "use"],
  additionalProperties: false,
  properties: {
    kty: { const: "OKP" },
    crv: { const: "Ed25519" },
    x: str,
    kid: str,
    alg: { const: "EdDSA" },
    use: { const: "sig" },
  },
};

const JWKS_DESCRIPTION =
  "Ed25519 public keys (`kty: OKP`, `crv: Ed25519`, `alg: EdDSA`) with their `kid`s, oldest first; the newest signs new tokens. After `kparty gateway keys rotate` the older keys stay listed, so their tokens verify until they expire. A resource server verifies a token with the key its header's `kid` names, and fetches this again when it meets a `kid` it does not know.";

const wellKnownSchema = {
  description: "ok",
  type: "object",
  required: [
    "jwksUri",
    "domain",
    "chainId",
    "contracts",
    "credentialTypes",
    "statusType",
    "actions",
    "presentation",
    "accessToken",
    "audit",
  ],
  additionalProperties: false,
  properties: {
    jwksUri: str,
    domain: str,
    chainId: { type: "integer" },
    contracts: { type: "object", additionalProperties: str },
    credentialTypes: { type: "array", items: str },
    statusType: str,
    actions: { type: "array", items: str },
    presentation: {
      type: "object",
      required: ["format", "alg", "challengeEndpoint", "audience"],
      properties: { format: str, alg: { type: "array", items: str }, challengeEndpoint: str, audience: str },
    },
    accessToken: {
      type: "object",
      required: ["format", "alg", "expiresIn", "clockSkewSeconds", "key", "tokenBinding"],
      properties: {
        format: str,
        alg: str,
        expiresIn: { type: "integer" },
        clockSkewSeconds: { type: "integer" },
        key: jwkSchema,
        tokenBinding: { enum: ["dpop", "bearer"] },
        dpopSigningAlgValuesSupported: { type: "array", items: str },
        dpopNonceRequired: { type: "boolean" },
      },
    },
    audit: {
      description:
        "the audit key's public half and the account that anchors the log's heads (docs/security.md, " +
        '"Audit log"); null when records are not signed (no passphrase)',
      oneOf: [
        { type: "null" },
        {
          type: "object",
          required: ["kid", "x", "anchorer", "log"],
          additionalProperties: false,
          properties: { kid: str, x: str, anchorer: str, log: str },
        },
      ],
    },
  },
};

const healthzRoute = {
  config: meta("Chain reachability and the last block whose registry events were applied"),
  schema: healthzSchema,
};
const wellKnownRoute = {
  config: meta("Domain, chain, contracts, credential types, actions, access-token key"),
  schema: { response: { 200: wellKnownSchema, ...errorResponses([]) } },
};
const jwksRoute = {
  config: meta("The access-token keys (JWKS): every key a live token may be signed with", JWKS_DESCRIPTION),
  schema: {
    response: {
      200: {
        description: "ok",
        type: "object",
        required: ["keys"],
        additionalProperties: false,
        properties: { keys: { type: "array", items: jwkSchema } },
      },
      ...errorResponses(["state_unavailable"]),
    },
  },
};
const openApiRoute = {
  config: meta("This document"),
  schema: {
    response: {
      200: { description: "this OpenAPI 3.1 document", type: "object", required: ["openapi", "paths"] },
      ...errorResponses([]),
    },
  },
};

/** `GET /healthz`: unavailable while the chain cannot be read, and for good once the audit log has failed. */
function health(services: GatewayServices) {
  const { chain, watcher, audit, operatorLog } = services;
  return async (_request: FastifyRequest, reply: FastifyReply) => {
    const unavailable = (error: unknown) => {
      operatorLog.failure("GET /healthz", error);
      return reply.code(503).send({
        status: "unavailable",
        chainId: chain.deployment.chainId,
        blockNumber: null,
        syncedBlock: watcher.syncedBlock,
        ...errorResponse(error)[1],
      });
    };
    if (audit.failure) return unavailable(audit.failure);
    try {
      const { chainId, blockNumber } = await getChainStatus(chain);
      return { status: "ok", chainId, blockNumber, syncedBlock: watcher.syncedBlock };
    } catch (error) {
      return unavailable(error);
    }
  };
}

/** What `GET /.well-known/kparty` says: domain, chain, contracts, what it accepts, the token and audit keys. */
function wellKnown({
  chain,
  domain,
  tokens,
  clockSkewSeconds,
  tokenBinding,
  dpop,
  auditKey,
}: GatewayServices) {
  return {
    jwksUri: "/.well-known/jwks.json",
    domain,
    chainId: chain.deployment.chainId,
    contracts: chain.deployment.contracts,
    credentialTypes: ["VerifiableCredential", CREDENTIAL_TYPE],
    statusType: STATUS_TYPE,
    actions: ACTIONS,
    presentation: {
      format: "jwt_vp",
      alg: ["ES256K"],
      challengeEndpoint: "/auth/challenge",
      audience: domain,
    },
    accessToken: {
      format: "jwt",
      alg: "EdDSA",
      expiresIn: tokens.ttlSeconds,
      clockSkewSeconds,
      key: tokens.publicJwk,
      // RFC 9449: how tokens are bound, and the proof algorithms accepted
      tokenBinding,
      dpopSigningAlgValuesSupported: DPOP_ALGORITHMS,
      dpopNonceRequired: dpop.requiresNonce,
    },
    // the audit key's public half and anchoring account (docs/security.md, "Audit log"); null: unsigned
    audit: auditKey,
  };
}

/**
 * What the gateway says about itself: `GET /healthz` (503 while the chain cannot be read, and
 * for good once the audit log has failed), `GET /.well-known/kparty` (domain, chain, contracts,
 * what it accepts, the access-token key), `GET /.well-known/jwks.json` (every access-token key,
 * for resource servers) and `GET /openapi.json` (generated from the routes' schemas).
 */
export const metaRoutes: FastifyPluginAsync<{ services: GatewayServices }> = async (app, { services }) => {
  const { tokens } = services;
  app.get("/healthz", healthzRoute, health(services));
  app.get("/.well-known/kparty", wellKnownRoute, async () => wellKnown(services));
  // every key a live token may be signed with (rotations keep the older keys); re-read from the
  // state backend when older than tokenKeyRefreshMs, so keys added at another replica appear
  app.get("/.well-known/jwks.json", jwksRoute, async () => {
    await tokens.keys.fresh();
    return tokens.jwks();
  });
  app.get("/openapi.json", openApiRoute, async () => app.kpartyOpenApi.document());
};
