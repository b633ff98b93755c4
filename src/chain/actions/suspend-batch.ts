import type { WalletClient } from "../client.ts";
import { type TransactionOutcome, transact } from "../transact.ts";
import { sortedIndexes } from "./validate.ts";

/**
 * Sets the bits `indexes` of the wallet account's suspension list in one transaction.
 * Indexes are de-duplicated and sorted; one storage write per 256 consecutive indexes.
 * @example
 * ```ts
 * await suspendBatch(wallet, { indexes: [7, 8, 9] });
 * ```
 */
export async function suspendBatch(
  wallet: WalletClient,
  args: { indexes: number[] },
): Promise<TransactionOutcome> {
  const indexes = sortedIndexes(args.indexes);
  return transact(wallet, wallet.writable.credentials, "suspendBatch", [indexes], "suspend batch");
}
