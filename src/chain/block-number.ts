import { JsonRpcApiProvider, type Provider } from "ethers";

/**
 * The node's latest block number, asked of the node itself. ethers' `getBlockNumber()`
 * may answer from a short-lived cache, which would pin reads to a stale block and hide
 * a revocation made moments ago.
 */
export async function latestBlockNumber(provider: Provider): Promise<number> {
  if (provider instanceof JsonRpcApiProvider) return Number(await provider.send("eth_blockNumber", []));
  return provider.getBlockNumber();
}
