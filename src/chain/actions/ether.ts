import type { Provider, Signer } from "ethers";
import { KPartyError } from "../../errors/index.ts";
import { toChainError } from "../errors.ts";

/**
 * Sends `value` wei from `signer` to `to` and waits for one confirmation (gas money for a
 * member). Failures are mapped like every chain call: an unfunded sender `insufficient_funds`,
 * a node that does not answer `registry_unavailable`.
 * @example
 * ```ts
 * const { blockNumber } = await sendEther(signer, { to: "0xabc…", value: parseEther("1") });
 * ```
 */
export async function sendEther(
  signer: Signer,
  args: { to: string; value: bigint },
): Promise<{ transactionHash: string; blockNumber: number }> {
  try {
    const tx = await signer.sendTransaction({ to: args.to, value: args.value });
    const receipt = await tx.wait(1);
    if (!receipt) throw new KPartyError("registry_unavailable", "send ETH: transaction dropped");
    return { transactionHash: receipt.hash, blockNumber: receipt.blockNumber };
  } catch (error) {
    throw toChainError(error, "send ETH");
  }
}

/**
 * An account's balance in wei.
 * @example
 * ```ts
 * const wei = await getBalance(provider, "0xabc…");
 * ```
 */
export async function getBalance(provider: Provider, account: string): Promise<bigint> {
  try {
    return await provider.getBalance(account);
  } catch (error) {
    throw toChainError(error, "read balance");
  }
}
