import type { ChainClient } from "../client.ts";
import { kpartyInterfaces } from "../contracts.ts";
import { toChainError } from "../errors.ts";
import { assertBytes32 } from "./validate.ts";

/**
 * Who anchored `key` (a credential id or a batch root) and at which block; null when the
 * key is not anchored.
 * @example
 * ```ts
 * const anchor = await getAnchor(client, root); // { anchoredBy: "0x…", blockNumber: 42 } | null
 * ```
 */
export async function getAnchor(
  client: ChainClient,
  key: string,
): Promise<{ anchoredBy: string; blockNumber: number } | null> {
  assertBytes32(key, "key");
  try {
    const [anchoredBy, blockNumber] = await client.contracts.credentials
      .getFunction("anchorOf")
      .staticCall(key);
    if (anchoredBy === "0x0000000000000000000000000000000000000000") return null;
    return { anchoredBy: anchoredBy as string, blockNumber: Number(blockNumber) };
  } catch (error) {
    throw toChainError(error, "read anchor", kpartyInterfaces().credentials);
  }
}
