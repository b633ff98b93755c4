import type { WalletClient } from "../client.ts";
import { type TransactionOutcome, transact } from "../transact.ts";
import { assertBytes32 } from "./validate.ts";

/**
 * Anchors a credential id with the wallet's account as issuer (a current member).
 * @example
 * ```ts
 * const { blockNumber } = await anchorCredential(wallet, { credentialId });
 * ```
 */
export async function anchorCredential(
  wallet: WalletClient,
  args: { credentialId: string },
): Promise<TransactionOutcome> {
  assertBytes32(args.credentialId, "credentialId");
  return transact(wallet, wallet.writable.credentials, "anchor", [args.credentialId], "anchor credential");
}
