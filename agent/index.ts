export {
  type AgentConfig,
  type AgentHandle,
  type AgentRole,
  createKPartyAgent,
  ethrNetworkName,
  type HolderAgent,
  type IssuerAgent,
  type VerifierAgent,
} from "./create-agent.ts";
export { IssuedCredentialStore, type IssuedRecord } from "./issued-store.ts";
export {
  KEYRING_KDF,
  KEYRING_KDF_BOUNDS,
  type KeyringOptions,
  openKeyring,
  type ScryptParams,
} from "./keyring.ts";
export { type CreatePresentationArgs, type IKPartyHolder, KPartyHolder } from "./plugins/kparty-holder.ts";
export {
  type DraftItem,
  type IKPartyIssuer,
  type IssueCredentialArgs,
  type IssuedCredential,
  type IssueItem,
  KPartyIssuer,
  MAX_BATCH,
  type StatusChange,
} from "./plugins/kparty-issuer.ts";
export { type KPartyCredentialStatus, KPartyStatusVerifier } from "./plugins/kparty-status.ts";
export { VeramoSigner } from "./veramo-signer.ts";
