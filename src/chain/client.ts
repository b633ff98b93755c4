import type { Provider, Signer } from "ethers";
import { connectContracts, type Deployment, type KPartyContracts } from "./contracts.ts";

/** Read access to a kparty deployment. */
export interface ChainClient {
  readonly deployment: Deployment;
  readonly provider: Provider;
  /** Contracts bound to the provider (reads only). */
  readonly contracts: KPartyContracts;
}

/** Read and write access: transactions are signed by `signer`. */
export interface WalletClient extends ChainClient {
  readonly signer: Signer;
  /** Contracts bound to the signer. */
  readonly writable: KPartyContracts;
}

/**
 * A read-only client for a deployment.
 * @example
 * ```ts
 * const client = createChainClient({ provider: createProvider(url, 31337), deployment });
 * ```
 */
export function createChainClient(params: { provider: Provider; deployment: Deployment }): ChainClient {
  const { provider, deployment } = params;
  return { deployment, provider, contracts: connectContracts(deployment.contracts, provider) };
}

/**
 * A client whose writes are signed by `signer` (which must be connected to the same chain).
 * Transactions from one wallet client are sent one at a time so nonces never collide.
 */
export function createWalletClient(params: { signer: Signer; deployment: Deployment }): WalletClient {
  const { signer, deployment } = params;
  if (!signer.provider) throw new TypeError("signer must be connected to a provider");
  return {
    deployment,
    provider: signer.provider,
    signer,
    contracts: connectContracts(deployment.contracts, signer.provider),
    writable: connectContracts(deployment.contracts, signer),
  };
}
