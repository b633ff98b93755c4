import { Contract, type ContractRunner, Interface } from "ethers";
import { didRegistryArtifact, loadArtifact } from "./artifacts.ts";

/** Addresses of a kparty deployment on one chain. */
export interface KPartyAddresses {
  EthereumDIDRegistry: string;
  ConsortiumRegistry: string;
  CredentialRegistry: string;
  /** The audit-head anchors (see contracts/AuditAnchors.sol); absent in deployments made before it. */
  AuditAnchors?: string;
}

/** A deployment: chain id, addresses and the block it was deployed at. */
export interface Deployment {
  chainId: number;
  contracts: KPartyAddresses;
  deployedAtBlock: number;
}

export interface KPartyContracts {
  didRegistry: Contract;
  consortium: Contract;
  credentials: Contract;
  /** Null when the deployment has no AuditAnchors contract. */
  auditAnchors: Contract | null;
}

let interfaces:
  | { consortium: Interface; credentials: Interface; didRegistry: Interface; auditAnchors: Interface }
  | undefined;

/** The ABIs' interfaces, for decoding errors and events. */
export function kpartyInterfaces() {
  interfaces ??= {
    consortium: new Interface(loadArtifact("ConsortiumRegistry").abi),
    credentials: new Interface(loadArtifact("CredentialRegistry").abi),
    didRegistry: new Interface(didRegistryArtifact().abi),
    auditAnchors: new Interface(loadArtifact("AuditAnchors").abi),
  };
  return interfaces;
}

/** Contract handles for a deployment, bound to `runner` (a provider for reads, a signer for writes). */
export function connectContracts(addresses: KPartyAddresses, runner: ContractRunner): KPartyContracts {
  const i = kpartyInterfaces();
  return {
    didRegistry: new Contract(addresses.EthereumDIDRegistry, i.didRegistry, runner),
    consortium: new Contract(addresses.ConsortiumRegistry, i.consortium, runner),
    credentials: new Contract(addresses.CredentialRegistry, i.credentials, runner),
    auditAnchors: addresses.AuditAnchors
      ? new Contract(addresses.AuditAnchors, i.auditAnchors, runner)
      : null,
  };
}
