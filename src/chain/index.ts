export { anchorBatch } from "./actions/anchor-batch.ts";
export { anchorCredential } from "./actions/anchor-credential.ts";
export {
  type AuditAnchor,
  addressOfKey,
  anchorAuditHead,
  getLatestAuditAnchor,
  keyWalletClient,
  listAuditAnchors,
} from "./actions/audit-anchors.ts";
export { getBalance, sendEther } from "./actions/ether.ts";
export { getAnchor } from "./actions/get-anchor.ts";
export { getChainStatus } from "./actions/get-chain-status.ts";
export { type CredentialState, getCredentialState } from "./actions/get-credential-state.ts";
export { getMember, listMembers, type MemberInfo } from "./actions/get-member.ts";
export { getQuorum } from "./actions/get-quorum.ts";
export {
  approveProposal,
  executeProposal,
  getProposal,
  listProposals,
  PROPOSAL_KINDS,
  type Proposal,
  type ProposalKind,
  type ProposalOutcome,
  proposeAddMember,
  proposeQuorum,
  proposeRemoveMember,
  proposeRevokeCredentials,
  proposeRotateKey,
} from "./actions/governance.ts";
export { reinstateBatch } from "./actions/reinstate-batch.ts";
export { reinstateCredential } from "./actions/reinstate-credential.ts";
export { revokeBatch } from "./actions/revoke-batch.ts";
export { revokeCredential } from "./actions/revoke-credential.ts";
export { suspendBatch } from "./actions/suspend-batch.ts";
export { suspendCredential } from "./actions/suspend-credential.ts";
export { MAX_STATUS_INDEX } from "./actions/validate.ts";
export { latestBlockNumber } from "./block-number.ts";
export { type ChainClient, createChainClient, createWalletClient, type WalletClient } from "./client.ts";
export {
  connectContracts,
  type Deployment,
  type KPartyAddresses,
  type KPartyContracts,
  kpartyInterfaces,
} from "./contracts.ts";
export { type DeployParams, deployKParty, type FoundingMember } from "./deploy.ts";
export { toChainError } from "./errors.ts";
export { createProvider, type ProviderOptions } from "./provider.ts";
export type { TransactionOutcome } from "./transact.ts";
export {
  createRegistryWatcher,
  type RegistryEvent,
  type RegistryReorg,
  type RegistryWatcher,
} from "./watch.ts";
