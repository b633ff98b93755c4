export {
  type CredentialDraft,
  type CredentialPayloadArgs,
  kpartyCredential,
  w3cCredential,
} from "./build.ts";
export { grantProblem, isModelSelector, MODEL_ID, pickGrant } from "./claims.ts";
export { ethrNetworkName, parseDidEthr } from "./did-ethr.ts";
export {
  ACTIONS,
  type Action,
  CREDENTIAL_TYPE,
  caip10,
  type KPartyClaims,
  ROLES,
  type Role,
  STATUS_PURPOSES,
  STATUS_TYPE,
  type StatusEntry,
  type StatusPointer,
  type StatusPurpose,
  statusEntry,
  VC_CONTEXT,
} from "./format.ts";
export { credentialJwtOf, presentationJwtOf } from "./json-form.ts";
export { credentialIdOf, type DecodedJwt, decodeJwt } from "./jwt.ts";
export { buildMerkleTree, type MerkleTree, merkleLeaf, merkleNode, merkleRootOf } from "./merkle.ts";
export { isObject, parseStatusEntries } from "./status.ts";
