/** The credential type every K-th Party token carries beside `VerifiableCredential`. */
export const CREDENTIAL_TYPE = "KPartyCredential";
/** The `credentialStatus.type` of kparty's on-chain status lists (see docs/registry.md). */
export const STATUS_TYPE = "KPartyRegistryStatus";
export const VC_CONTEXT = "https://www.w3.org/2018/credentials/v1";

export const ROLES = ["participant", "coordinator", "observer"] as const;
export type Role = (typeof ROLES)[number];

export const ACTIONS = ["model:read", "model:infer", "model:contribute", "round:aggregate"] as const;
export type Action = (typeof ACTIONS)[number];

export const STATUS_PURPOSES = ["revocation", "suspension"] as const;
export type StatusPurpose = (typeof STATUS_PURPOSES)[number];

/** The `credentialSubject.kParty` claims of a K-th Party token. */
export interface KPartyClaims {
  /** CAIP-10 style account of the ConsortiumRegistry: `eip155:<chainId>:<address>`. */
  consortium: string;
  role: Role;
  /** Model ids the holder may touch, or `["*"]`. */
  models: string[];
  actions: Action[];
  quota?: { requestsPerMinute: number };
}

/** One `credentialStatus` entry, as it appears in the credential. */
export interface StatusEntry {
  id: string;
  type: typeof STATUS_TYPE;
  statusPurpose: StatusPurpose;
  statusListIndex: string;
}

/** Where a status bit lives: registry contract, chain, purpose and index. */
export interface StatusPointer {
  chainId: number;
  registry: string;
  purpose: StatusPurpose;
  index: number;
}

/** `eip155:<chainId>:<address>`, the form kparty uses to name a contract on a chain. */
export function caip10(chainId: number, address: string): string {
  return `eip155:${chainId}:${address}`;
}

/** Builds the `credentialStatus` entry for one purpose. */
export function statusEntry(pointer: StatusPointer): StatusEntry {
  return {
    id: `${caip10(pointer.chainId, pointer.registry)}#${pointer.purpose}-${pointer.index}`,
    type: STATUS_TYPE,
    statusPurpose: pointer.purpose,
    statusListIndex: String(pointer.index),
  };
}
