export { buildGateway, type GatewayOptions } from "./app.ts";
export {
  type AuditEntry,
  AuditLog,
  type AuditRecord,
  type AuditVerification,
  auditHash,
  GENESIS_HASH,
  verifyAuditChain,
} from "./audit.ts";
export {
  createGatewayClient,
  type GatewayClient,
  type GatewayClientOptions,
  type TokenResponse,
} from "./client.ts";
export {
  accessTokenHash,
  createDpopNonces,
  createDpopProof,
  createDpopVerifier,
  DPOP_ALGORITHMS,
  type DpopAlgorithm,
  type DpopNonces,
  type DpopProofInput,
  type DpopReplayStore,
  type DpopVerifier,
  dpopPublicJwk,
  jwkThumbprint,
  MemoryDpopReplayStore,
  SqliteDpopReplayStore,
} from "./dpop.ts";
export { type ErrorBody, errorHeaders, errorResponse, HTTP_STATUS } from "./errors.ts";
export { createAccessGuard, type GuardOptions, type TokenBinding } from "./guard.ts";
export { createKPartyProtection, type ProtectionOptions } from "./middleware.ts";
export { openApiDocument } from "./openapi.ts";
export { type Challenge, ChallengeStore, openGatewayDatabase } from "./state.ts";
export {
  createStatusCache,
  type StatusCache,
  type StatusCacheOptions,
  type StatusKey,
} from "./status-cache.ts";
export {
  type AccessClaims,
  type AccessGrant,
  createTokenService,
  createTokenVerifier,
  type TokenPublicKey,
  type TokenService,
  type TokenVerifier,
} from "./tokens.ts";
export type { CheckResult } from "./verify/checks.ts";
export { verifyEs256k } from "./verify/es256k.ts";
export {
  judgeCredentialState,
  REMOVED_ISSUER_POLICIES,
  type RemovedIssuerPolicy,
} from "./verify/judge.ts";
export {
  createVerifier,
  type DidResolver,
  type PresentationExpectations,
  type VerifiedAnyCredential,
  type VerifiedCredential,
  type VerifiedPresentation,
  type Verifier,
} from "./verify/verifier.ts";
export { DEFAULT_CLOCK_SKEW_SECONDS } from "./verify/window.ts";
