import type { WalletClient } from "../client.ts";
import { type TransactionOutcome, transact } from "../transact.ts";
import { assertStatusIndex } from "./validate.ts";

/**
 * Sets bit `index` of the wallet account's suspension list (reversible).
 * @example
 * ```ts
 * await suspendCredential(wallet, { index: 42 });
 * ```
 */
export async function suspendCredential(
  wallet: WalletClient,
  args: { index: number },
): Promise<TransactionOutcome> {
  assertStatusIndex(args.index);
  return transact(wallet, wallet.writable.credentials, "suspend", [args.index], "suspend credential");
}
