import { JsonRpcApiProvider } from "ethers";
import { KPartyError } from "../../errors/index.ts";
import { latestBlockNumber } from "../block-number.ts";
import type { ChainClient } from "../client.ts";
import { toChainError } from "../errors.ts";

/**
 * The chain's id and latest block, read from the node; throws `registry_unavailable` if
 * the node cannot be reached or serves another chain than the deployment's.
 * @example
 * ```ts
 * const { chainId, blockNumber } = await getChainStatus(client);
 * ```
 */
export async function getChainStatus(client: ChainClient): Promise<{ chainId: number; blockNumber: number }> {
  const { provider } = client;
  let chainId: number;
  let blockNumber: number;
  try {
    const readChainId =
      provider instanceof JsonRpcApiProvider
        ? provider.send("eth_chainId", []).then((hex: string) => Number(hex))
        : provider.getNetwork().then((n) => Number(n.chainId));
    [chainId, blockNumber] = await Promise.all([readChainId, latestBlockNumber(provider)]);
  } catch (error) {
    throw toChainError(error, "read chain status");
  }
  if (chainId !== client.deployment.chainId) {
    throw new KPartyError(
      "registry_unavailable",
      `node serves chain ${chainId}, deployment is on ${client.deployment.chainId}`,
      {
        details: { chainId, expected: client.deployment.chainId },
      },
    );
  }
  return { chainId, blockNumber };
}
