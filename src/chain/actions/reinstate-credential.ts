import type { WalletClient } from "../client.ts";
import { type TransactionOutcome, transact } from "../transact.ts";
import { assertStatusIndex } from "./validate.ts";

/**
 * Clears bit `index` of the wallet account's suspension list.
 * @example
 * ```ts
 * await reinstateCredential(wallet, { index: 42 });
 * ```
 */
export async function reinstateCredential(
  wallet: WalletClient,
  args: { index: number },
): Promise<TransactionOutcome> {
  assertStatusIndex(args.index);
  return transact(wallet, wallet.writable.credentials, "reinstate", [args.index], "reinstate credential");
}
