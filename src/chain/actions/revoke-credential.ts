import type { WalletClient } from "../client.ts";
import { type TransactionOutcome, transact } from "../transact.ts";
import { assertStatusIndex } from "./validate.ts";

/**
 * Sets bit `index` of the wallet account's revocation list (final).
 * @example
 * ```ts
 * await revokeCredential(wallet, { index: 42 });
 * ```
 */
export async function revokeCredential(
  wallet: WalletClient,
  args: { index: number },
): Promise<TransactionOutcome> {
  assertStatusIndex(args.index);
  return transact(wallet, wallet.writable.credentials, "revoke", [args.index], "revoke credential");
}
