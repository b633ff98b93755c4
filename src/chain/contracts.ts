import { Contract, type ContractRunner, Interface } from "ethers";
import { didRegistryArtifact, loadArtifact } from "./artifacts.ts";

/** Addresses of a kparty deployment on one chain. */
export interface KPartyAddresses {
  EthereumDIDRegistry: string;
  ConsortiumRegistry: string;
  CredentialRegistry: string;
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
}

let interfaces: { consortium: Interface; credentials: Interface; didRegistry: Interface } | undefined;

/** The ABIs' interfaces, for decoding errors and events. */
export function kpartyInterfaces() {
  interfaces ??= {
    consortium: new Interface(loadArtifact("ConsortiumRegistry").abi),
    credentials: new Interface(loadArtifact("CredentialRegistry").abi),
    didRegistry: new Interface(didRegistryArtifact().abi),
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
  };
}
