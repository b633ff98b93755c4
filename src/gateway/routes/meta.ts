import type { FastifyPluginAsync } from "fastify";
import { getChainStatus } from "../../chain/index.ts";
import { ACTIONS, CREDENTIAL_TYPE, STATUS_TYPE } from "../../credential/index.ts";
import { DPOP_ALGORITHMS } from "../dpop.ts";
import { errorResponse } from "../errors.ts";
import { openApiDocument } from "../openapi.ts";
import type { GatewayServices } from "../services.ts";

/**
 * What the gateway says about itself: `GET /healthz` (503 while the chain cannot be read, and
 * for good once the audit log has failed), `GET /.well-known/kparty` (domain, chain, contracts,
 * what it accepts, the access-token key, the audit key), `GET /.well-known/jwks.json` (every access-token key,
 * for resource servers) and `GET /openapi.json`.
 */
export const metaRoutes: FastifyPluginAsync<{ services: GatewayServices }> = async (app, { services }) => {
  const { chain, watcher, audit, operatorLog, domain, tokens, clockSkewSeconds } = services;
  const openapi = openApiDocument({ domain, clockSkewSeconds });

  app.get("/healthz", async (_request, reply) => {
    // unavailable while the chain cannot be read, and for good once the audit log has failed
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
  });

  app.get("/.well-known/kparty", async () => ({
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
      tokenBinding: services.tokenBinding,
      dpopSigningAlgValuesSupported: DPOP_ALGORITHMS,
      dpopNonceRequired: services.dpop.requiresNonce,
    },
    // the audit key's public half and anchoring account (docs/security.md, "Audit log"); null: unsigned
    audit: services.auditKey,
  }));

  // every key a live token may be signed with (rotations keep the older keys); re-read from the
  // state backend when older than tokenKeyRefreshMs, so keys added at another replica appear
  app.get("/.well-known/jwks.json", async () => {
    await tokens.keys.fresh();
    return tokens.jwks();
  });

  app.get("/openapi.json", async () => openapi);
};
