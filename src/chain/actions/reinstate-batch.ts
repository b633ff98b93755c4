import type { WalletClient } from "../client.ts";
import { type TransactionOutcome, transact } from "../transact.ts";
import { sortedIndexes } from "./validate.ts";

/**
 * Clears the bits `indexes` of the wallet account's suspension list in one transaction.
 * Indexes are de-duplicated and sorted; one storage write per 256 consecutive indexes.
 * @example
 * ```ts
 * await reinstateBatch(wallet, { indexes: [7, 8, 9] });
 * ```
 */
export async function reinstateBatch(
  wallet: WalletClient,
  args: { indexes: number[] },
): Promise<TransactionOutcome> {
  const indexes = sortedIndexes(args.indexes);
  return transact(wallet, wallet.writable.credentials, "reinstateBatch", [indexes], "reinstate batch");
}
