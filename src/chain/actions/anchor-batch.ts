import type { WalletClient } from "../client.ts";
import { type TransactionOutcome, transact } from "../transact.ts";
import { assertBytes32 } from "./validate.ts";

/**
 * Anchors the Merkle root of a batch of `count` credential ids (see docs/registry.md) with
 * the wallet's account as issuer; one storage write whatever the batch size.
 * @example
 * ```ts
 * const tree = buildMerkleTree(credentialIds);
 * await anchorBatch(wallet, { root: tree.root, count: credentialIds.length });
 * ```
 */
export async function anchorBatch(
  wallet: WalletClient,
  args: { root: string; count: number },
): Promise<TransactionOutcome> {
  assertBytes32(args.root, "root");
  return transact(
    wallet,
    wallet.writable.credentials,
    "anchorBatch",
    [args.root, args.count],
    "anchor batch",
  );
}
