export {
  type AuditKeyStore,
  type AuditKeyStoreOptions,
  type AuditKeys,
  type AuditPublicKey,
  auditLogId,
  signAuditHash,
  verifyAuditHash,
} from "./audit-keys.ts";
export { createEmbeddedState } from "./embedded/index.ts";
export { memoryTokenKeys, newTokenKey, publicJwkOf, TokenKeyRing, tokenKeyId } from "./keys.ts";
export type {
  AuditEntry,
  AuditReader,
  AuditRecord,
  AuditSigner,
  AuditStore,
  AuditVerification,
  Awaitable,
  Challenge,
  ChallengeStore,
  DpopReplayStore,
  GatewayState,
  ModelLock,
  ModelMetadataStore,
  ModelRecord,
  ModelUpdateRecord,
  OAuthClient,
  OAuthClientStore,
  RateLimits,
  RevokedTokenStore,
  StoredTokenKey,
  TokenKeyStore,
  TokenPublicKey,
} from "./port.ts";
export {
  MIGRATIONS,
  type Migration,
  migrate,
  openPostgresState,
  type PostgresStateOptions,
  postgresState,
} from "./postgres/index.ts";
export type { TokenKeyStoreOptions } from "./sealed.ts";
